"""Checking an LMDB file before it is mapped.

LMDB trusts its file: a damaged one (truncated, a page overwritten) crashes the
process that maps it with SIGBUS or SIGSEGV, which no `except` can catch. Both
LMDB environments of markfs are caches (the hot cache mirrors SQLite; the
content index names blobs), so a file that fails a check is deleted and the
cache starts empty, then rebuilt. Two checks:

- `header_damage`: the two meta pages (magic, version, page size) and that the
  file holds every page the newest meta page names — cheap, run at every open;
- `walk_damage`: every entry of every database read in a forked child, so a
  crash there is an answer, not the end of this process — run when a mount
  starts and by fsck.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MAGIC = 0xBEEFC0DE
_PAGE_HEADER = 16
# MDB_meta: magic, version, address, mapsize, two MDB_db records, last page, txn id
_META = struct.Struct("<IIQQ" + "IHHQQQQQ" * 2 + "QQ")


def open_environment(env_dir: Path, **options: Any) -> Any:
    """An LMDB environment in its own folder, made 0700 here: LMDB would make a missing
    one with its files' mode (0600, no search bit), which only root can enter."""
    import lmdb

    env_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return lmdb.open(str(env_dir), mode=0o600, subdir=True, **options)


def _walk(env_dir: str) -> None:
    """Read every entry of every database (in the forked child)."""
    import lmdb

    env = lmdb.open(env_dir, readonly=True, lock=False, max_dbs=16, subdir=True)
    with env.begin() as txn:
        names = [bytes(k) for k, _ in txn.cursor()]
    for name in [None, *names]:
        db = env.open_db(name, create=False) if name is not None else None
        with env.begin(db=db) as txn:
            for key, value in txn.cursor():
                len(bytes(key)) + len(bytes(value))


def header_damage(env_dir: Path) -> str | None:
    """Why the environment's data file cannot be mapped safely, or None."""
    path = env_dir / "data.mdb"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(2 * 65536)
    except FileNotFoundError:
        return None  # a new environment
    metas: list[tuple[int, ...]] = []
    for offset in (_PAGE_HEADER, None):
        if offset is None:  # the second meta page follows the first, one page later
            page_size = metas[0][4] if metas else 0
            offset = page_size + _PAGE_HEADER
        if len(head) < offset + _META.size:
            return f"{path} is truncated ({size} bytes)"
        meta = _META.unpack_from(head, offset)
        if meta[0] != _MAGIC or meta[1] != 1 or meta[4] not in (4096, 8192, 16384, 65536):
            return f"{path} has a damaged meta page"
        metas.append(meta)
    newest = max(metas, key=lambda m: m[-1])
    if (newest[-2] + 1) * newest[4] > size:
        return f"{path} is truncated ({size} bytes, needs {(newest[-2] + 1) * newest[4]})"
    return None


def walk_damage(env_dir: Path, timeout: float = 300.0) -> str | None:
    """Read everything in a forked child; why that failed, or None. (A fork, not a new
    interpreter: 2 ms instead of 50 on every mount start and fsck; the child only reads
    the file with the lmdb module already loaded, then leaves with os._exit.)"""
    if header_damage(env_dir) is not None or not (env_dir / "data.mdb").exists():
        return header_damage(env_dir)
    status, said = _in_child(lambda: _walk(str(env_dir)), timeout)
    if status is None:
        return f"{env_dir / 'data.mdb'} could not be read within {timeout:.0f}s"
    if os.WIFSIGNALED(status):
        return f"{env_dir / 'data.mdb'} is damaged (reading it crashed with signal " \
               f"{os.WTERMSIG(status)})"
    if os.waitstatus_to_exitcode(status):
        return f"{env_dir / 'data.mdb'} is damaged ({said or '?'})"
    return None


def _in_child(action: Callable[[], None], timeout: float) -> tuple[int | None, str]:
    """Run `action` in a forked child: its wait status (None: killed after `timeout`)
    and the last line of the error it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing but the action, then out
        code = 0
        try:
            os.close(read)
            action()
        except BaseException as exc:  # every failure is the answer
            os.write(write, f"{type(exc).__name__}: {exc}".splitlines()[-1].encode()[:500])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], timeout)  # EOF once the child is gone
        said = pipe.read().decode(errors="replace") if ready else ""
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, ""
    return os.waitpid(pid, 0)[1], said.strip()


def discard(env_dir: Path) -> None:
    """Delete a damaged environment's files: it is opened anew, empty."""
    for name in ("data.mdb", "lock.mdb"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(env_dir / name)
