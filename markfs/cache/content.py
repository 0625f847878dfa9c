"""The on-disk content cache: chunks of remote files, stored once per content.

A chunk is a fixed-size piece (`CHUNK_SIZE`) of one version of one remote file,
named by (source, path, etag, chunk number). Its bytes live in a file named by
their xxh3-128 hash under `DATA_DIR/cache/blobs/`, so identical content is
stored once; LMDB maps chunk names to hashes and records each blob's size and
last use. When the total passes the limit, least recently used blobs go first.
A chunk name whose blob has gone is simply a miss. Everything here blocks:
callers run it in worker threads.

Chunk names also carry the file's *epoch*, a counter per (source, path) that
every write through the mount bumps: where a storage's identity is coarse
(SFTP: size and whole-second mtime), a rewrite of the same size in the same
second still gets new chunk names, so old bytes can never be served for it.

Blobs are verified: the first read of a blob in a process (or after the blob's
file changed on disk) hashes it whole and compares with its name; a blob that
fails is dropped and logged, and the caller fetches the chunk again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import lmdb
import xxhash

from markfs.cache.lmdbfile import discard, open_environment, walk_damage

log = logging.getLogger(__name__)
CHUNK_SIZE = 8 * 1024 * 1024
_BLOB = struct.Struct("<Qd")  # size, last use (unix seconds)
LMDB_KEY_MAX = 511  # bytes in a key of LMDB's default build
_TOUCH_EVERY_S = 30.0  # last-use times are coarse: reads must not all write LMDB


def chunk_name(source_id: int, path: bytes, etag: bytes, index: int, epoch: int = 0) -> bytes:
    """A fixed-length LMDB key for one chunk of one version of one file."""
    return xxhash.xxh3_128_digest(
        struct.pack("<QQQ", source_id, index, epoch) + len(path).to_bytes(4, "little")
        + path + etag)


def _file_key(source_id: int, path: bytes) -> bytes:
    """Source id + path; a path too long for an LMDB key (511 bytes) by its digest,
    after a NUL no path can start with."""
    if len(path) <= LMDB_KEY_MAX - 8:
        return struct.pack("<Q", source_id) + path
    return struct.pack("<Q", source_id) + b"\0" + xxhash.xxh3_128_digest(path)


def _identity(fd: int) -> tuple[int, int, int]:
    """What changes when a blob's file is rewritten in place (inode, size, mtime)."""
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns


class ContentCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        index = root / "index.lmdb"
        self.damage = walk_damage(index)  # small (an entry per chunk): always walked
        if self.damage is not None:  # no index: no blob can be found, nor trusted
            log.warning("content cache: %s; starting empty", self.damage)
            discard(index)
            shutil.rmtree(self.blobs, ignore_errors=True)
            self.blobs.mkdir()
        self.env = open_environment(index, max_dbs=4, map_size=1 << 32, sync=False,
                                    metasync=False)
        self._chunks = self.env.open_db(b"chunks")  # chunk name -> content hash
        self._used = self.env.open_db(b"blobs")  # content hash -> size, last use
        self._meta = self.env.open_db(b"meta")
        self._epochs = self.env.open_db(b"epochs")  # source id + path -> epoch
        self._blob_lock = threading.Lock()  # blob files and their index entries change together
        self._verified: dict[bytes, tuple[int, int, int]] = {}  # digest -> file identity

    def close(self) -> None:
        self.env.close()

    def _blob_path(self, digest: bytes) -> Path:
        name = digest.hex()
        return self.blobs / name[:2] / name

    def epoch(self, source_id: int, path: bytes) -> int:
        with self.env.begin() as txn:
            raw = txn.get(_file_key(source_id, path), db=self._epochs)
        return int.from_bytes(raw, "little") if raw else 0

    def bump_epoch(self, source_id: int, path: bytes) -> None:
        """The file was written through the mount: its cached chunks are of the past."""
        key = _file_key(source_id, path)
        with self.env.begin(write=True) as txn:
            raw = txn.get(key, db=self._epochs)
            value = (int.from_bytes(raw, "little") if raw else 0) + 1
            txn.put(key, value.to_bytes(8, "little"), db=self._epochs)

    def read(self, name: bytes, start: int, length: int) -> bytes | None:
        """Bytes [start, start+length) of a cached chunk, or None if it is not cached
        (or its blob failed verification and was dropped)."""
        opened = self.open_chunk(name)
        if opened is None:
            return None
        fd = opened[0]
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def open_chunk(self, name: bytes) -> tuple[int, bytes] | None:
        """A descriptor of a cached chunk's blob and the blob's digest, verified and its
        use recorded (for eviction); None if the chunk is not cached. The caller closes
        it. A blob is named by its content, so the descriptor reads the right bytes while
        it is open, even if the blob is evicted meanwhile — unless the file is changed in
        place, which `unchanged` tells."""
        with self.env.begin() as txn:
            digest = txn.get(name, db=self._chunks)
            used = txn.get(digest, db=self._used) if digest else None
        if digest is None or used is None:
            return None
        try:
            fd = os.open(self._blob_path(digest), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if not self._verify(digest, fd):
            os.close(fd)
            return None
        size, last_use = _BLOB.unpack(used)
        if time.time() - last_use > _TOUCH_EVERY_S:
            with self.env.begin(write=True) as txn:
                txn.put(digest, _BLOB.pack(size, time.time()), db=self._used)
        return fd, bytes(digest)

    def unchanged(self, digest: bytes, fd: int) -> bool:
        """Is the open blob still the file that was verified (one fstat)?"""
        return self._verified.get(digest) == _identity(fd)

    def _verify(self, digest: bytes, fd: int) -> bool:
        """Is the open blob what its name says? Hashed once per process and file version."""
        identity = _identity(fd)
        if self._verified.get(digest) == identity:
            return True
        if xxhash.xxh3_128_digest(os.pread(fd, identity[1] + 1, 0)) == digest:
            self._verified[digest] = identity
            return True
        log.warning("content cache: blob %s is damaged; dropped, fetching again", digest.hex())
        self.drop_blob(digest)
        return False

    def drop_blob(self, digest: bytes) -> None:
        """Forget a blob: chunk names that point to it become misses."""
        self._verified.pop(digest, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(digest))
        with self.env.begin(write=True) as txn:
            raw = txn.get(digest, db=self._used)
            if raw is not None:
                txn.delete(digest, db=self._used)
                self._add_total(txn, -_BLOB.unpack(raw)[0])

    def verify_all(self, repair: bool) -> list[str]:
        """Every blob hashed against its name, and every indexed blob present (fsck)."""
        problems = []
        with self.env.begin() as txn:
            indexed = {bytes(k): _BLOB.unpack(v)[0] for k, v in txn.cursor(db=self._used)}
        for digest, size in indexed.items():
            try:
                data = self._blob_path(digest).read_bytes()
            except FileNotFoundError:
                data = None
            if data is None or len(data) != size or xxhash.xxh3_128_digest(data) != digest:
                state = "missing" if data is None else "damaged"
                problems.append(f"content cache blob {digest.hex()} is {state}")
                if repair:
                    self.drop_blob(digest)
        for temp in self.blobs.glob("*/*.tmp"):  # a blob write cut short (a crash)
            problems.append(f"content cache temporary {temp.name} left behind")
            if repair:
                temp.unlink(missing_ok=True)
        return problems

    def contains(self, name: bytes) -> bool:
        with self.env.begin() as txn:
            digest = txn.get(name, db=self._chunks)
            return digest is not None and txn.get(digest, db=self._used) is not None

    def put(self, name: bytes, data: bytes) -> None:
        digest = xxhash.xxh3_128_digest(data)
        with self._blob_lock:  # an eviction (another thread's) never takes a blob between
            total = self._store(name, digest, data)  # its file and its index entry
        if total > self.max_bytes:
            self.evict()

    def _store(self, name: bytes, digest: bytes, data: bytes) -> int:
        """The blob's file, then its index entries; the cache's new total."""
        path = self._blob_path(digest)
        if digest not in self._verified or not path.exists():  # (a damaged twin is replaced)
            path.parent.mkdir(exist_ok=True)
            temp = path.with_suffix(f".{threading.get_ident()}.tmp")
            try:
                temp.write_bytes(data)
                temp.replace(path)  # a reader never sees half a blob
            except BaseException:
                temp.unlink(missing_ok=True)  # (a full disk: no stray temporary)
                raise
            with open(path, "rb") as f:
                self._verified[digest] = _identity(f.fileno())
        with self.env.begin(write=True) as txn:
            known = txn.get(digest, db=self._used) is not None
            txn.put(name, digest, db=self._chunks)
            txn.put(digest, _BLOB.pack(len(data), time.time()), db=self._used)
            return self._add_total(txn, 0 if known else len(data))

    def _add_total(self, txn: lmdb.Transaction, delta: int) -> int:
        raw = txn.get(b"total", db=self._meta)
        total = max((int.from_bytes(raw, "little", signed=True) if raw else 0) + delta, 0)
        txn.put(b"total", total.to_bytes(8, "little", signed=True), db=self._meta)
        return total

    def used_bytes(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(b"total", db=self._meta)
        return int.from_bytes(raw, "little", signed=True) if raw else 0

    def make_room(self, wanted: int) -> int:
        """The disk is full: drop least recently used blobs until `wanted` bytes are free
        again (staged copies of files being written come before cached copies of files
        that are on their source anyway); how many bytes it freed."""
        return self.evict(max(self.used_bytes() - wanted, 0))

    def evict(self, target: int | None = None) -> int:
        """Drop least recently used blobs until the cache holds at most `target` bytes
        (default: 90% of its limit)."""
        with self._blob_lock:
            target = int(self.max_bytes * 0.9) if target is None else target
            with self.env.begin() as txn:
                blobs = sorted(((_BLOB.unpack(v)[1], bytes(k), _BLOB.unpack(v)[0])
                                for k, v in txn.cursor(db=self._used)))
            total, freed = sum(size for _, _, size in blobs), 0
            for _, digest, size in blobs:
                if total - freed <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._blob_path(digest))
                try:
                    self._forget_blob(digest, size)
                except lmdb.Error:  # a full disk: the unlink just now made room for this
                    self._forget_blob(digest, size)
                freed += size
            return freed

    def _forget_blob(self, digest: bytes, size: int) -> None:
        with self.env.begin(write=True) as txn:
            txn.delete(digest, db=self._used)
            self._add_total(txn, -size)
