"""Metrics (issue 12, part 4): the Prometheus endpoint of `[metrics] listen` and
/.markfs/metrics count a read, a write and pending uploads by the right amounts;
`markfs stats` shows them; an address in use fails the mount in one line."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, is_mounted, run_markfs
from prometheus_client.parser import text_string_to_metric_families
from remote_helpers import Stoppable, pending_while_down
from servers import free_port


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return parse(text)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metered(tmp_path: Path, data_dir: Path, backing: Path) -> Iterator[tuple[Mount, str]]:
    port = free_port()
    (data_dir / "markfs.toml").write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    point = tmp_path / "mnt"
    point.mkdir()
    for mount in Mount(data_dir, point).start().checked():
        yield mount, f"http://127.0.0.1:{port}/metrics"


def test_a_write_and_a_read_move_the_counters_by_their_bytes(
        metered: tuple[Mount, str]) -> None:
    mount, url = metered
    before = scrape(url)
    path = mount.path / "sources" / "loc" / "counted.bin"
    data = os.urandom(100_000)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)  # past the page cache: every byte asked
    try:
        buf = bytearray()
        while chunk := os.read(fd, 1 << 20):
            buf += chunk
    finally:
        os.close(fd)
    after = scrape(url)
    written = value(after, "markfs_written_bytes_total", source="loc") - value(
        before, "markfs_written_bytes_total", source="loc")
    read = value(after, "markfs_read_bytes_total", source="loc") - value(
        before, "markfs_read_bytes_total", source="loc")
    assert (written, read) == (100_000, 100_000)
    creates = value(after, "markfs_fuse_request_seconds_count", op="create") - value(
        before, "markfs_fuse_request_seconds_count", op="create")
    assert creates == 1


def test_the_metrics_file_in_the_mount_has_the_same_counters(
        metered: tuple[Mount, str]) -> None:
    mount, url = metered
    (mount.path / "sources" / "loc" / "x.txt").write_text("12345")
    inside = parse((mount.path / ".markfs" / "metrics").read_text())
    served = scrape(url)
    name = "markfs_written_bytes_total"
    assert value(inside, name, source="loc") == value(served, name, source="loc") == 5


def test_pending_uploads_are_a_gauge_of_files_and_bytes(
        tmp_path: Path, data_dir: Path) -> None:
    server = Stoppable("s3", tmp_path)
    port = free_port()
    run_markfs(data_dir, "source", "add", "r", server.source.url)
    (data_dir / "markfs.toml").write_text(
        f'[metrics]\nlisten = "127.0.0.1:{port}"\n[mount]\nio_timeout = 2.0\n'
        "list_timeout = 2.0\ndrain_timeout = 30.0\n")
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        pending_while_down(mount, server, "wait.bin", b"w" * 12_345)
        deadline = time.monotonic() + 10
        while value(scrape(url), "markfs_uploads_pending") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert value(scrape(url), "markfs_uploads_pending_bytes") == 12_345
        while value(scrape(url), "markfs_upload_retries_total") < 1:  # (after upload_delay)
            assert time.monotonic() < deadline
            time.sleep(0.2)
        server.start()
        server.source.wait_for("wait.bin", b"w" * 12_345)
        deadline = time.monotonic() + 10
        while value(scrape(url), "markfs_uploads_pending") != 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert value(scrape(url), "markfs_uploads_total") == 1
        assert value(scrape(url), "markfs_upload_retries_total") >= 1
    finally:
        mount.stop()
        server.close()


def test_a_metrics_address_in_use_fails_the_mount_in_one_line(
        tmp_path: Path, data_dir: Path, backing: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (data_dir / "markfs.toml").write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        point = tmp_path / "mnt"
        point.mkdir()
        done = run_markfs(data_dir, "mount", str(point), check=False)
    assert done.returncode == 1 and "address in use" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not is_mounted(point)


def test_stats_once_prints_requests_sources_and_uploads(mount: Mount) -> None:
    (mount.path / "sources" / "loc" / "s.txt").write_text("stat me")
    out = run_markfs(mount.data_dir, "stats", "--once", str(mount.path)).stdout
    assert "create" in out and "loc" in out and "uploads: 0 pending" in out


def test_stats_refuses_a_folder_that_is_not_a_markfs_mount(
        data_dir: Path, tmp_path: Path) -> None:
    done = run_markfs(data_dir, "stats", "--once", str(tmp_path), check=False)
    assert done.returncode == 1 and "is not a markfs mount point" in done.stderr


def test_stats_of_a_subtree_mount_says_where_the_counters_are(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point, root="sources").start()
    try:
        done = run_markfs(data_dir, "stats", "--once", str(point), check=False)
    finally:
        mount.stop()
    assert done.returncode == 1 and "subtree (--root)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
