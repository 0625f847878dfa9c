"""The on-disk content cache: chunks of remote files, stored once per content.

A chunk is a fixed-size piece (`CHUNK_SIZE`) of one version of one remote file,
named by (source, path, etag, chunk number). Its bytes live in a file named by
their xxh3-128 hash under `DATA_DIR/cache/blobs/`, so identical content is
stored once; LMDB maps chunk names to hashes and records each blob's size and
last use. When the total passes the limit, least recently used blobs go first.
A chunk name whose blob has gone is simply a miss. Everything here blocks:
callers run it in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from pathlib import Path

import lmdb
import xxhash

CHUNK_SIZE = 8 * 1024 * 1024
_BLOB = struct.Struct("<Qd")  # size, last use (unix seconds)
_TOUCH_EVERY_S = 30.0  # last-use times are coarse: reads must not all write LMDB


def chunk_name(source_id: int, path: bytes, etag: bytes, index: int) -> bytes:
    """A fixed-length LMDB key for one chunk of one version of one file."""
    return xxhash.xxh3_128_digest(
        struct.pack("<QQ", source_id, index) + len(path).to_bytes(4, "little") + path + etag)


class ContentCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.env = lmdb.open(str(root / "index.lmdb"), max_dbs=4, map_size=1 << 32, mode=0o600,
                             sync=False, metasync=False)
        self._chunks = self.env.open_db(b"chunks")  # chunk name -> content hash
        self._used = self.env.open_db(b"blobs")  # content hash -> size, last use
        self._meta = self.env.open_db(b"meta")
        self._evict_lock = threading.Lock()

    def close(self) -> None:
        self.env.close()

    def _blob_path(self, digest: bytes) -> Path:
        name = digest.hex()
        return self.blobs / name[:2] / name

    def read(self, name: bytes, start: int, length: int) -> bytes | None:
        """Bytes [start, start+length) of a cached chunk, or None if it is not cached."""
        with self.env.begin() as txn:
            digest = txn.get(name, db=self._chunks)
            used = txn.get(digest, db=self._used) if digest else None
        if digest is None or used is None:
            return None
        try:
            with open(self._blob_path(digest), "rb") as f:
                data = os.pread(f.fileno(), length, start)
        except FileNotFoundError:
            return None
        size, last_use = _BLOB.unpack(used)
        if time.time() - last_use > _TOUCH_EVERY_S:
            with self.env.begin(write=True) as txn:
                txn.put(digest, _BLOB.pack(size, time.time()), db=self._used)
        return data

    def contains(self, name: bytes) -> bool:
        with self.env.begin() as txn:
            digest = txn.get(name, db=self._chunks)
            return digest is not None and txn.get(digest, db=self._used) is not None

    def put(self, name: bytes, data: bytes) -> None:
        digest = xxhash.xxh3_128_digest(data)
        path = self._blob_path(digest)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            temp = path.with_suffix(f".{threading.get_ident()}.tmp")
            temp.write_bytes(data)
            temp.replace(path)  # a reader never sees half a blob
        with self.env.begin(write=True) as txn:
            known = txn.get(digest, db=self._used) is not None
            txn.put(name, digest, db=self._chunks)
            txn.put(digest, _BLOB.pack(len(data), time.time()), db=self._used)
            total = self._add_total(txn, 0 if known else len(data))
        if total > self.max_bytes:
            self.evict()

    def _add_total(self, txn: lmdb.Transaction, delta: int) -> int:
        raw = txn.get(b"total", db=self._meta)
        total = max((int.from_bytes(raw, "little", signed=True) if raw else 0) + delta, 0)
        txn.put(b"total", total.to_bytes(8, "little", signed=True), db=self._meta)
        return total

    def used_bytes(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(b"total", db=self._meta)
        return int.from_bytes(raw, "little", signed=True) if raw else 0

    def evict(self) -> int:
        """Drop least recently used blobs until the cache is under 90% of its limit."""
        with self._evict_lock:
            target = int(self.max_bytes * 0.9)
            with self.env.begin() as txn:
                blobs = sorted(((_BLOB.unpack(v)[1], bytes(k), _BLOB.unpack(v)[0])
                                for k, v in txn.cursor(db=self._used)))
            total, freed = sum(size for _, _, size in blobs), 0
            for _, digest, size in blobs:
                if total - freed <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._blob_path(digest))
                with self.env.begin(write=True) as txn:
                    txn.delete(digest, db=self._used)
                    self._add_total(txn, -size)
                freed += size
            return freed
