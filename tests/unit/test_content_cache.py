"""The on-disk content cache: stored once per content, bounded, least recently used first."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest

from markfs.cache.content import ContentCache, chunk_name


def test_a_chunk_reads_back_by_range(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    name = chunk_name(1, b"a/b", b"etag1", 0)
    cache.put(name, b"0123456789")
    assert cache.read(name, 2, 3) == b"234"
    assert cache.contains(name)


def test_another_etag_is_a_miss(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    cache.put(chunk_name(1, b"f", b"v1", 0), b"old")
    assert cache.read(chunk_name(1, b"f", b"v2", 0), 0, 3) is None


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    data = os.urandom(4096)
    cache.put(chunk_name(1, b"x", b"e", 0), data)
    cache.put(chunk_name(2, b"y", b"f", 3), data)
    assert cache.used_bytes() == 4096
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def test_the_limit_evicts_least_recently_used_first(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=10_000)
    names = [chunk_name(1, b"f", b"e", i) for i in range(5)]
    for name in names:
        cache.put(name, os.urandom(3000))
        time.sleep(0.01)  # distinct last-use times
    assert cache.used_bytes() <= 10_000
    assert cache.read(names[0], 0, 1) is None  # the oldest went
    assert cache.read(names[-1], 0, 1) is not None  # the newest stayed


def test_a_vanished_blob_is_a_miss_not_an_error(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    name = chunk_name(1, b"f", b"e", 0)
    cache.put(name, b"data")
    for blob in (tmp_path / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    assert cache.read(name, 0, 4) is None


def test_a_bumped_epoch_makes_every_chunk_of_the_file_a_miss(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    before = chunk_name(1, b"f", b"e", 0, cache.epoch(1, b"f"))
    cache.put(before, b"old")
    cache.bump_epoch(1, b"f")
    after = chunk_name(1, b"f", b"e", 0, cache.epoch(1, b"f"))
    assert after != before and cache.read(after, 0, 3) is None
    assert cache.epoch(1, b"other") == 0


def damage_every_blob(root: Path) -> None:
    for blob in (root / "blobs").rglob("*"):
        if blob.is_file():
            with open(blob, "r+b") as f:
                f.write(b"\xff\xfe")


def test_a_damaged_blob_is_a_miss_after_a_restart(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    name = chunk_name(1, b"f", b"e", 0)
    cache.put(name, b"data" * 100)
    cache.close()
    damage_every_blob(tmp_path)
    reopened = ContentCache(tmp_path, max_bytes=1 << 30)
    assert reopened.read(name, 0, 4) is None
    assert reopened.used_bytes() == 0


def test_a_blob_rewritten_while_in_use_is_verified_again(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    name = chunk_name(1, b"f", b"e", 0)
    cache.put(name, b"data" * 100)
    assert cache.read(name, 0, 4) == b"data"
    time.sleep(0.01)  # a later mtime
    damage_every_blob(tmp_path)
    assert cache.read(name, 0, 4) is None


def test_verify_all_reports_and_drops_damaged_blobs(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    cache.put(chunk_name(1, b"f", b"e", 0), b"good" * 10)
    cache.put(chunk_name(1, b"g", b"e", 0), b"bad!" * 10)
    for blob in (tmp_path / "blobs").rglob("*"):
        if blob.is_file() and blob.read_bytes().startswith(b"bad!"):
            blob.write_bytes(b"BAD!" * 10)
    assert len(cache.verify_all(repair=True)) == 1
    assert cache.verify_all(repair=False) == []


def test_a_blob_write_that_fails_leaves_no_temporary_and_fsck_sweeps_old_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (issue 24, part 5): the temporary of a failed blob write goes; one
    left by a crash is found by fsck and removed by --repair."""
    cache = ContentCache(tmp_path, max_bytes=1 << 30)
    real_write = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        real_write(self, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(Path, "write_bytes", full)
        with pytest.raises(OSError):
            cache.put(chunk_name(1, b"f", b"e", 0), b"x" * 1000)
    assert list(cache.blobs.rglob("*.tmp")) == []
    crashed = cache.blobs / "ab" / "abcdef.123.tmp"
    crashed.parent.mkdir(exist_ok=True)
    crashed.write_bytes(b"half")
    assert any("temporary" in p for p in cache.verify_all(repair=False))
    cache.verify_all(repair=True)
    assert not crashed.exists() and cache.verify_all(repair=False) == []


def test_both_lmdb_folders_are_their_owners_to_enter_and_nobody_elses(tmp_path: Path) -> None:
    """LMDB makes a missing environment folder with the files' mode (0600: no search
    bit), which only root can enter — a daemon run as its user could not open its cache."""
    from markfs.cache.hot import HotCache

    ContentCache(tmp_path / "cache", 10**9).close()
    HotCache(tmp_path / "hot.lmdb").close()
    for folder in (tmp_path / "cache" / "index.lmdb", tmp_path / "hot.lmdb"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
