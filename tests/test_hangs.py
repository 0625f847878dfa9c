"""A server that stops answering never hangs a syscall past `io_timeout` (+ a little),
and a write that the uploader cannot finish never holds a rename hostage."""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from remote_helpers import RemoteSource, mount_remote, s3_source, sftp_source
from servers import S3Server, SeaweedServer, SshServer, StallingProxy

IO_TIMEOUT_S = 3.0
BOUND_S = IO_TIMEOUT_S + 2.0  # the timeout, plus a kernel round trip on a busy machine
CONFIG = f"io_timeout = {IO_TIMEOUT_S}\nattr_ttl = 0.2\nentry_ttl = 0.2\ndir_ttl = 0.5\n"


@dataclasses.dataclass
class Proxied:
    source: RemoteSource  # reaches the server through the proxy
    proxy: StallingProxy


@pytest.fixture(params=["moto", "seaweedfs", "sftp"])
def proxied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Proxied]:
    if request.param == "sftp":
        yield from _proxied_sftp(request.getfixturevalue("sshd"), tmp_path)
        return
    server: S3Server | SeaweedServer = request.getfixturevalue(
        "s3" if request.param == "moto" else "seaweed")
    source = s3_source(server, f"hang-{os.getpid()}-{os.urandom(3).hex()}")
    proxy = StallingProxy(int(server.endpoint.rsplit(":", 1)[1]))
    try:
        yield Proxied(dataclasses.replace(
            source, url=source.url.replace(server.endpoint, proxy.endpoint)), proxy)
    finally:
        proxy.close()


def _proxied_sftp(sshd: SshServer, tmp_path: Path) -> Iterator[Proxied]:
    """sshd through the proxy: its host key, known under the proxy's port."""
    source = sftp_source(sshd, tmp_path / "sftp-root")
    proxy = StallingProxy(sshd.port)
    key = sshd.known_hosts.read_text().split(" ", 1)[1]
    known = tmp_path / "known_hosts_proxy"
    known.write_text(f"[127.0.0.1]:{proxy.port} {key}")
    url = source.url.replace(f":{sshd.port}/", f":{proxy.port}/").replace(
        str(sshd.known_hosts), str(known))
    try:
        yield Proxied(dataclasses.replace(source, url=url), proxy)
    finally:
        proxy.close()


@pytest.fixture
def hung_mount(tmp_path: Path, data_dir: Path, proxied: Proxied) -> Iterator[Mount]:
    mount = mount_remote(tmp_path, data_dir, proxied.source, CONFIG)
    try:
        yield mount
    finally:
        proxied.proxy.resume()
        mount.stop()


def eio_within_bound(action: Any) -> float:
    started = time.monotonic()
    with pytest.raises(OSError) as exc:
        action()
    elapsed = time.monotonic() - started
    assert exc.value.errno == errno.EIO, exc.value
    assert elapsed < BOUND_S, f"EIO after {elapsed:.1f}s"
    return elapsed


def test_read_of_an_uncached_file_gives_eio_in_time(
        proxied: Proxied, hung_mount: Mount) -> None:
    proxied.source.put("cold.bin", os.urandom(3 << 20))
    files = hung_mount.path / "sources" / "r"
    assert os.stat(files / "cold.bin").st_size == 3 << 20
    proxied.proxy.stall()
    eio_within_bound(lambda: (files / "cold.bin").read_bytes())


def test_first_listing_of_a_folder_gives_eio_in_time(
        proxied: Proxied, hung_mount: Mount) -> None:
    proxied.source.put("deep/inner/f.txt", b"x")
    files = hung_mount.path / "sources" / "r"
    assert os.listdir(files) == ["deep"]
    proxied.proxy.stall()
    eio_within_bound(lambda: os.listdir(files / "deep"))


def test_a_stalled_stream_gives_eio_in_time(proxied: Proxied, hung_mount: Mount) -> None:
    data = os.urandom(40 << 20)
    proxied.source.put("stream.bin", data)
    path = hung_mount.path / "sources" / "r" / "stream.bin"
    proxied.proxy.pause_s = 0.01  # at most ~6 MB/s: the stream is still running below
    with open(path, "rb", buffering=0) as f:
        assert f.read(1 << 20) == data[: 1 << 20]
        proxied.proxy.stall()
        f.seek(30 << 20)
        eio_within_bound(lambda: f.read(1 << 20))
