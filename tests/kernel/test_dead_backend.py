"""A backend that stops answering gives EIO within the timeout, and the mount recovers.

The hung backend is real: a local source whose folder lives inside a second
markfs mount whose daemon is stopped with SIGSTOP.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, run_markfs

TIMEOUT_S = 1.5


@pytest.fixture
def inner(tmp_path: Path) -> Iterator[Mount]:
    """A second markfs mount; its folder becomes a source of the outer mount."""
    data = tmp_path / "inner-data"
    run_markfs(data, "init")
    files = tmp_path / "inner-files"
    files.mkdir()
    (files / "f").write_text("from inner")
    run_markfs(data, "source", "add", "files", f"file://{files}")
    point = tmp_path / "inner-mnt"
    point.mkdir()
    m = Mount(data, point).start()
    try:
        yield m
    finally:
        if m.proc is not None:
            m.proc.send_signal(signal.SIGCONT)
        m.stop()


def test_hung_backend_gives_eio_within_the_timeout_then_recovers(
        mount: Mount, inner: Mount) -> None:
    (mount.data_dir / "markfs.toml").write_text(
        f"[mount]\nio_timeout = {TIMEOUT_S}\nlist_timeout = {TIMEOUT_S}\n"
        "attr_ttl = 0.1\nentry_ttl = 0.1\nwatch_local = false\n")
    run_markfs(mount.data_dir, "source", "add", "slow",
               f"file://{inner.path}/sources/files")
    mount.remount()
    slow = mount.path / "sources" / "slow"
    assert (slow / "f").read_text() == "from inner"
    assert inner.proc is not None
    inner.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.3)  # let the outer kernel caches expire
        started = time.monotonic()
        with pytest.raises(OSError) as exc, open(slow / "f") as f:
            f.read()
        elapsed = time.monotonic() - started
        assert exc.value.errno == 5  # EIO
        assert elapsed < TIMEOUT_S * 4, f"took {elapsed:.1f}s"
        assert os.listdir(mount.path / "sources")  # the rest of the mount still answers
    finally:
        inner.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert (slow / "f").read_text() == "from inner"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
