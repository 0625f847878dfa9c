"""Catalog backups (`markfs backup`, `markfs restore`): one tar file holding what a data
directory cannot rebuild from its sources.

A backup holds a consistent copy of the catalog (SQLite's online backup API, taken
while a mount keeps writing), `markfs.toml`, the staged copies its pending uploads
name (closed files not yet on their source) and the snapshot blobs its table files
name (the only copy of what `/tables` shows). The content cache and the LMDB mirror
are left out: one refills, the other is rebuilt from the catalog.

A restore refuses a mounted data directory and any file that is not such a backup
before it changes anything; then it sets the current catalog, mirror, config and
staged copies aside under `before-restore-<time>/` and puts the backup's in their
place. Node ids, and so inode numbers and NFS handles, are those of the backup;
its pending uploads resume at the next mount.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from markfs.catalog.backups import CatalogCopy, why_unusable
from markfs.catalog.db import Catalog
from markfs.config import DataDir
from markfs.errors import UserError
from markfs.runtime import active_mounts

FORMAT = 1
MANIFEST = "markfs-backup.json"  # the first member: what the file is
CATALOG = "catalog.db"
CONFIG = "markfs.toml"
STAGING = "staging"
SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int  # bytes of the backup file
    uploads: int  # pending uploads whose staged copies it holds
    snapshots: int  # table snapshot blobs it holds


@dataclass(frozen=True)
class RestoreReport:
    uploads: int  # pending uploads that resume at the next mount
    snapshots: int
    set_aside: Path | None  # where the data directory's previous state went


def take_backup(data_dir: DataDir, catalog: Catalog, dest: Path) -> BackupReport:
    """Write a backup of the data directory to `dest` (a new file)."""
    if dest.exists():
        raise UserError(f"{dest} exists: remove it or name another file")
    if not dest.parent.is_dir():
        raise UserError(f"no such folder: {dest.parent}")
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=data_dir.root) as tmp:
        work = Path(tmp)
        catalog.copy_to(work / CATALOG)
        with CatalogCopy(work / CATALOG) as copy:
            staged = _copy_staged(copy, work / STAGING)
            digests = copy.snapshot_digests()
            version = copy.schema_version()
        blobs = [p for p in (_snapshot_path(data_dir, d) for d in sorted(digests)) if p.is_file()]
        manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
                    "schema_version": version, "data_dir": str(data_dir.root),
                    "uploads": len(staged), "snapshots": len(blobs)}
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            _write_tar(partial, manifest, work, data_dir, blobs)
            partial.rename(dest)
        finally:
            partial.unlink(missing_ok=True)
    return BackupReport(dest, dest.stat().st_size, len(staged), len(blobs))


def _copy_staged(copy: CatalogCopy, into: Path) -> list[Path]:
    """Copies of the staged files the catalog copy's upload rows name. A row whose file
    is gone by now was uploaded since the catalog was copied: it is dropped."""
    into.mkdir()
    copied, gone = [], []
    for row_id, path in copy.staged_uploads():
        try:
            shutil.copyfile(path, into / Path(path).name)
            copied.append(into / Path(path).name)
        except FileNotFoundError:
            gone.append(row_id)
    copy.forget_uploads(gone)
    return copied


def _snapshot_path(data_dir: DataDir, digest: str) -> Path:
    return data_dir.cache / SNAPSHOTS / digest[:2] / digest


def _write_tar(path: Path, manifest: dict[str, object], work: Path, data_dir: DataDir,
               blobs: list[Path]) -> None:
    with tarfile.open(path, "w") as tar:  # not compressed: snapshots are already
        text = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(text), int(time.time()), 0o600
        tar.addfile(info, io.BytesIO(text))
        tar.add(work / CATALOG, CATALOG)
        if data_dir.config_file.is_file():
            tar.add(data_dir.config_file, CONFIG)
        tar.add(work / STAGING, STAGING)
        for blob in blobs:
            tar.add(blob, f"{SNAPSHOTS}/{blob.parent.name}/{blob.name}")
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups a schedule wrote into `folder`."""
    made = sorted(folder.glob("markfs-backup-*.tar"))
    doomed = made[:-keep] if keep > 0 else made
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def scheduled_name(folder: Path) -> Path:
    """A new name that sorts after every earlier one (to the millisecond)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return folder / f"markfs-backup-{stamp}.{int(now * 1000) % 1000:03d}.tar"


def restore_backup(data_dir: DataDir, src: Path) -> RestoreReport:
    """Put the backup at `src` in place of the data directory's catalog (unmounted)."""
    mounted = active_mounts(data_dir)
    if mounted:
        raise UserError(f"{data_dir.root} is mounted on {mounted[0].mountpoint}: "
                        f"unmount it first (markfs umount {mounted[0].mountpoint})")
    if data_dir.shares_its_catalog:
        raise UserError(f"{data_dir.root} keeps its catalog in PostgreSQL "
                        f"({data_dir.catalog_location}): restore it with pg_restore")
    data_dir.root.mkdir(parents=True, exist_ok=True)
    data_dir.root.chmod(0o700)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir.root) as tmp:
        work = Path(tmp)
        _unpack(src, work)
        why = why_unusable(work / CATALOG)
        if why is not None:
            raise UserError(f"{src}: {why}")
        aside = _set_aside(data_dir)
        staged, snapshots = _put_in_place(work, data_dir)
    with CatalogCopy(data_dir.catalog) as restored:
        restored.move_staging(data_dir.staging)
    return RestoreReport(staged, snapshots, aside)


def _unpack(src: Path, work: Path) -> dict[str, object]:
    not_backup = UserError(f"{src} is not a markfs backup (made by: markfs backup FILE)")
    try:
        with tarfile.open(src, "r:*") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise not_backup
            tar.extractall(work, filter="data")
    except (tarfile.TarError, OSError, UnicodeDecodeError):
        raise not_backup from None
    try:
        manifest = json.loads((work / MANIFEST).read_text())
    except (OSError, ValueError):
        raise not_backup from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise not_backup
    return manifest


def _set_aside(data_dir: DataDir) -> Path | None:
    """Move the current catalog, mirror, config and staged copies out of the way."""
    present = [p for p in (data_dir.catalog, data_dir.catalog.with_name("catalog.db-wal"),
                           data_dir.catalog.with_name("catalog.db-shm"), data_dir.hot,
                           data_dir.config_file, data_dir.staging) if p.exists()]
    if not present:
        return None
    aside = data_dir.root / time.strftime("before-restore-%Y%m%d-%H%M%S", time.gmtime())
    aside.mkdir()
    for path in present:
        path.rename(aside / path.name)
    return aside


def _put_in_place(work: Path, data_dir: DataDir) -> tuple[int, int]:
    """The unpacked backup's files where a data directory keeps them; the number of
    staged copies and of snapshot blobs."""
    (work / CATALOG).rename(data_dir.catalog)
    if (work / CONFIG).is_file():
        (work / CONFIG).rename(data_dir.config_file)
    staged = work / STAGING
    staged.mkdir(exist_ok=True)
    count = len(list(staged.iterdir()))
    staged.rename(data_dir.staging)
    blobs = list((work / SNAPSHOTS).glob("*/*")) if (work / SNAPSHOTS).is_dir() else []
    for blob in blobs:
        target = data_dir.cache / SNAPSHOTS / blob.parent.name / blob.name
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.rename(target)
    return count, len(blobs)
