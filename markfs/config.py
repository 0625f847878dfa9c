"""The data directory's layout and `markfs.toml`, with the defaults of every setting."""

from __future__ import annotations

import math
import os
import secrets
import sys
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from markfs.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def default_data_dir() -> Path:
    env = os.environ.get("MARKFS_DATA_DIR")
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "markfs"


@dataclass(frozen=True)
class DataDir:
    """Where one markfs instance keeps its state."""

    root: Path

    @property
    def catalog(self) -> Path:
        """The SQLite catalog's file (the embedded engine, the default)."""
        return self.root / "catalog.db"

    @property
    def catalog_url_file(self) -> Path:
        """Where `init --catalog URL` wrote a shared catalog's URL (PostgreSQL)."""
        return self.root / "catalog.url"

    @property
    def catalog_location(self) -> Path | str:
        """The catalog this data directory uses: a PostgreSQL URL, or the SQLite file."""
        try:
            return self.catalog_url_file.read_text().strip()
        except FileNotFoundError:
            return self.catalog

    @property
    def host_id(self) -> str:
        """This data directory's identity among the hosts of a shared catalog (random,
        made at first use): journal rows and sessions name it."""
        path = self.root / "host.id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            temp = path.with_suffix(".tmp")
            temp.write_text(secrets.token_hex(8) + "\n")
            os.replace(temp, path)
            return path.read_text().strip()

    @property
    def shares_its_catalog(self) -> bool:
        return self.catalog_url_file.exists()

    @property
    def hot(self) -> Path:
        return self.root / "hot.lmdb"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def backups(self) -> Path:
        return self.root / "backups"  # scheduled backups (`[backup] schedule`)

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def config_file(self) -> Path:
        return self.root / "markfs.toml"

    def exists(self) -> bool:
        return self.catalog.exists() or self.catalog_url_file.exists()


def _in(low: float, high: float) -> dict[str, Any]:
    """A number setting's metadata: the inclusive range it may take."""
    return {"range": (low, high)}


DAY_S = 86_400.0


@dataclass(frozen=True)
class MountConfig:
    """`[mount]` in markfs.toml; every value can be overridden there."""

    # seconds the kernel may cache a name -> inode answer (0: not at all)
    entry_ttl: float = field(default=1.0, metadata=_in(0, DAY_S))
    # seconds the kernel may cache attributes (0: not at all)
    attr_ttl: float = field(default=1.0, metadata=_in(0, DAY_S))
    # seconds a directory listing is trusted before it is re-read (0: every time)
    dir_ttl: float = field(default=30.0, metadata=_in(0, DAY_S))
    # worker threads for backend calls
    io_threads: int = field(default=16, metadata=_in(1, 1024))
    # seconds before a backend call that hangs gives EIO
    io_timeout: float = field(default=30.0, metadata=_in(0.1, DAY_S))
    # the same for reading one whole directory listing
    list_timeout: float = field(default=300.0, metadata=_in(0.1, DAY_S))
    # concurrent FUSE requests (trio tasks)
    max_tasks: int = field(default=64, metadata=_in(1, 100_000))
    watch_local: bool = True  # use inotify to notice changes in local sources
    # a catalog shared by several hosts (PostgreSQL): seconds this daemon's session lives
    # without a renewal (renewed every fifth of it; writes stop at six tenths of it, before
    # any other host can take the session for dead)
    session_ttl: float = field(default=10.0, metadata=_in(2, 3600))
    # the same: seconds between two reads of the change log when no notification came (a
    # host's NOTIFY lost with its connection); notifications show changes at once
    feed_poll: float = field(default=1.0, metadata=_in(0.05, 3600))
    # extended attributes through the mount (tags, table freshness, user.* of sources);
    # false: every xattr call is ENOSYS, after which the kernel asks no more — `ls -l`
    # then costs no GETXATTR per entry (docs/benchmarks.md); tags stay in the CLI
    xattrs: bool = True
    # seconds a file closed through the mount waits before its upload to S3 or SFTP
    # starts: a rename, chmod, utime or delete right after the close (rsync, git, tar,
    # editors) then changes only the catalog and the upload to come, not the server.
    # fsync and unmount do not wait; what is closed is journaled either way
    upload_delay: float = field(default=0.5, metadata=_in(0, 3600))
    # on-disk content cache of remote files
    cache_max_bytes: int = field(default=10 * 1024**3, metadata=_in(0, 2**60))
    # seconds the daemon keeps uploading after unmount
    drain_timeout: float = field(default=600.0, metadata=_in(0, 7 * DAY_S))
    # the kernel's read-ahead on the mount in KiB (4096: a sequential reader's data is
    # asked in 1 MiB pieces instead of 256 KiB; see docs/benchmarks.md for why it is
    # not the default); 0 leaves the kernel's default; needs root
    read_ahead_kb: int = field(default=0, metadata=_in(0, 1024 * 1024))
    # DATA_DIR/logs/markfs.log rotates past this size
    log_max_bytes: int = field(default=10 * 1024 * 1024, metadata=_in(4096, 2**40))
    # rotated logs kept (markfs.log.1 ... .N)
    log_keep: int = field(default=5, metadata=_in(1, 1000))
    # owner, group and umask of what has none of its own (S3, tables, views, markfs's
    # folders; SFTP's owners too when given): a user/group name or number, "" for the
    # user who mounts; the umask in octal. `markfs mount --uid/--gid/--umask` override.
    uid: str = ""
    gid: str = ""
    umask: str = "022"


@dataclass(frozen=True)
class OwnerOverride:
    """`markfs mount --uid/--gid/--umask`: each given one replaces [mount]'s."""

    uid: str | None = None
    gid: str | None = None
    umask: str | None = None

    def applied(self, config: MountConfig) -> MountConfig:
        return replace(config, uid=config.uid if self.uid is None else self.uid,
                       gid=config.gid if self.gid is None else self.gid,
                       umask=config.umask if self.umask is None else self.umask)

    def arguments(self) -> list[str]:
        """The same as `markfs mount` options (for the background daemon)."""
        given = (("--uid", self.uid), ("--gid", self.gid), ("--umask", self.umask))
        return [part for option, value in given if value is not None
                for part in (option, value)]


@dataclass(frozen=True)
class ScanConfig:
    """`[scan]` in markfs.toml: what a mounted daemon scans on its own."""

    schedule: str = "0 0 * * *"  # cron expression (local time); "" turns scheduled scans off
    refresh: bool = True  # after each scheduled scan, re-render stale managed tables


@dataclass(frozen=True)
class BackupConfig:
    """`[backup]` in markfs.toml: catalog backups a mounted daemon takes on its own."""

    schedule: str = ""  # cron expression (local time); "" (the default): none
    # scheduled backups kept in DATA_DIR/backups; older ones are removed
    keep: int = field(default=7, metadata=_in(1, 100_000))


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]` in markfs.toml: a Prometheus endpoint of the mounted daemon."""

    listen: str = ""  # HOST:PORT, e.g. "127.0.0.1:9410"; "" (the default): none


Section = TypeVar("Section", MountConfig, ScanConfig, BackupConfig, MetricsConfig)
SECTIONS: dict[str, type[Any]] = {"mount": MountConfig, "scan": ScanConfig,
                                  "backup": BackupConfig, "metrics": MetricsConfig}


def _load_section(data_dir: DataDir, name: str, kind: type[Section]) -> Section:
    """One section of markfs.toml; the whole file is checked first, so any command that
    reads it refuses a bad setting anywhere in it, in one line."""
    path = data_dir.config_file
    if not path.exists():
        return kind()
    doc = _checked(path)
    return kind(**doc.get(name, {}))


def _checked(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc: dict[str, dict[str, Any]] = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    for name, section in doc.items():
        if name not in SECTIONS:
            raise UserError(f"{path}: unknown section [{name}] "
                            f"(known: {', '.join(f'[{s}]' for s in sorted(SECTIONS))})")
        if not isinstance(section, dict):
            raise UserError(f"{path}: {name} must be a section ([{name}] and its settings)")
        known = {f.name: f for f in fields(SECTIONS[name])}
        for key, value in section.items():
            if key not in known:
                raise UserError(f"{path}: unknown setting {name}.{key} "
                                f"(known: {', '.join(sorted(known))})")
            _check_value(f"{path}: {name}.{key}", value, known[key])
    return doc


def _check_value(where: str, value: object, setting: Field[Any]) -> None:
    default = setting.default
    if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
            value, (int, float) if isinstance(default, float) else type(default)):
        raise UserError(f"{where} must be a {type(default).__name__}")
    if "range" not in setting.metadata:
        return
    low, high = setting.metadata["range"]
    assert isinstance(value, (int, float))
    if not (math.isfinite(value) and low <= value <= high):
        raise UserError(f"{where} must be between {low:g} and {high:g}, got {value}")


def load_mount_config(data_dir: DataDir) -> MountConfig:
    return _load_section(data_dir, "mount", MountConfig)


def load_scan_config(data_dir: DataDir) -> ScanConfig:
    return _load_section(data_dir, "scan", ScanConfig)


def load_backup_config(data_dir: DataDir) -> BackupConfig:
    return _load_section(data_dir, "backup", BackupConfig)


def load_metrics_config(data_dir: DataDir) -> MetricsConfig:
    return _load_section(data_dir, "metrics", MetricsConfig)
