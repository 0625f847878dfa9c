"""How each source of a mount is doing, as its last backend calls said: ok, unreachable
(no answer, a cut or refused connection, a timeout) or refused (credentials or access
denied), since when, and the last error. A mount whose S3 credentials were refused
would otherwise keep serving its last listings with only a warning in the log.

The state machine of a remote source (S3, SFTP): ok -> unreachable or refused on a
failed call; while not ok, calls fail at once (`SourceSet.shut`: EIO for data, the
cached listing for metadata, nothing for a refused source) instead of each waiting
`io_timeout` behind the others; a probe every `PROBE_EVERY_S` (`SourceUpkeep.probe`)
or any call that still got through brings it back to ok.

A change of state is logged once, and written to `DATA_DIR/run/health-<pid>.json` for
`markfs status` (another process); `/.markfs/status.json` shows it too.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from markfs.errors import FsError, SourceRefused

log = logging.getLogger(__name__)

REFUSED = {errno.EACCES, errno.EPERM}
UNREACHABLE = {errno.EIO, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET,
               errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNABORTED}


@dataclass(frozen=True)
class SourceState:
    state: str  # "ok" | "unreachable" | "refused"
    since: float  # time of the change (seconds since the epoch)
    last_error: str | None = None  # the error's own words (markfs status, the log)
    failure: str | None = None  # only its kind ("Connection refused"): what everyone sees


class SourceHealth:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path  # where other processes read it; None: kept in memory only
        self._states: dict[str, SourceState] = {}

    def worked(self, source: str) -> None:
        """A call to the source got its answer."""
        current = self._states.get(source)
        if current is not None and current.state != "ok":
            log.info("source %s answers again (was %s since %s)", source, current.state,
                     time.strftime("%H:%M:%S", time.localtime(current.since)))
            self._change(source, SourceState("ok", time.time()))
        elif current is None:
            self._states[source] = SourceState("ok", time.time())

    def failed(self, source: str, exc: BaseException) -> None:
        """A call to the source failed; only failures of the source itself count."""
        code = exc.code if isinstance(exc, FsError) else getattr(exc, "errno", None)
        refused = code in REFUSED or getattr(exc, "refused", False) or isinstance(
            exc, SourceRefused)
        state = "refused" if refused else "unreachable" if code in UNREACHABLE else None
        if state is None:
            return  # ENOENT and the like: the source answered
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = said.splitlines()[0] if said else errno.errorcode.get(code or 0, "")
        kind = os.strerror(code or errno.EIO)
        current = self._states.get(source)
        if current is not None and current.state == state:
            return  # (the words of the failure that changed it are kept)
        log.warning("source %s is %s: %s", source, state, message)
        self._change(source, SourceState(state, time.time(), message, kind))

    def state_of(self, source: str) -> SourceState | None:
        """The source's state, if a call to it was ever made."""
        return self._states.get(source)

    def snapshot(self) -> dict[str, SourceState]:
        return dict(self._states)

    def _change(self, source: str, new: SourceState) -> None:
        self._states[source] = new
        if self.path is None:
            return
        try:
            temp = self.path.with_suffix(".tmp")
            temp.write_text(json.dumps({k: asdict(v) for k, v in self._states.items()}))
            temp.replace(self.path)
        except OSError as exc:
            log.warning("cannot record source health in %s: %s", self.path, exc.strerror)

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def health_file(run_dir: Path, pid: int | None = None) -> Path:
    return run_dir / f"health-{pid or os.getpid()}.json"


def read_health(path: Path) -> dict[str, SourceState]:
    """What a daemon recorded (nothing if it recorded nothing)."""
    try:
        raw = json.loads(path.read_text())
        return {name: SourceState(**fields) for name, fields in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}
