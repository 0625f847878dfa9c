"""One shape for both remote kinds: seed and inspect a source's content on the server."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import Mount, add_source_now
from servers import S3Server, SeaweedServer, SshServer, StallingProxy, s3_env

from markfs.backends.base import SftpLocation
from markfs.namespace.files.urls import parse_source_url

UPLOAD_WAIT_S = 60.0


@dataclass
class RemoteSource:
    """A source as the server sees it: write and read objects without markfs."""

    kind: str
    url: str
    put: Callable[[str, bytes], None]
    get: Callable[[str], bytes | None]  # None: no such file
    names: Callable[[], set[str]]  # every file path below the source root
    # bytes the server holds of each upload in pieces begun and not finished (S3:
    # multipart uploads; SFTP: markfs's hidden temporary files)
    unfinished: Callable[[], list[int]] = lambda: []
    # S3: an object's x-amz-meta-* values (None: no such object)
    metadata: Callable[[str], dict[str, str] | None] = lambda path: None

    def wait_for(self, path: str, content: bytes, timeout: float = UPLOAD_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.get(path) != content:
            if time.monotonic() > deadline:
                got = self.get(path)
                raise AssertionError(f"{path} on the server: {None if got is None else len(got)}"
                                     f" bytes, wanted {len(content)}")
            time.sleep(0.1)


def wait_until(check: Callable[[], object], timeout: float = UPLOAD_WAIT_S,
               what: Callable[[], object] | None = None) -> None:
    """Poll `check` until it holds; past `timeout` fail, saying `what()` if given."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, (
            f"condition not reached in time{f': {what()}' if what else ''}")
        time.sleep(0.1)


def s3_source(server: S3Server | SeaweedServer, bucket: str, prefix: str = "data") -> RemoteSource:
    client: Any = server.client()
    client.create_bucket(Bucket=bucket)
    base = f"{prefix}/" if prefix else ""

    def get(path: str) -> bytes | None:
        try:
            return bytes(client.get_object(Bucket=bucket, Key=base + path)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None

    def names() -> set[str]:
        out = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
            out |= {o["Key"][len(base):] for o in page.get("Contents", [])}
        return out

    def unfinished() -> list[int]:
        sent = []
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            try:
                parts = client.list_parts(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"]).get("Parts", [])
            except client.exceptions.NoSuchUpload:
                continue  # finished or aborted since it was listed
            sent.append(sum(part["Size"] for part in parts))
        return sent

    def metadata(path: str) -> dict[str, str] | None:
        try:
            return dict(client.head_object(Bucket=bucket, Key=base + path)["Metadata"])
        except client.exceptions.ClientError:
            return None

    return RemoteSource("s3", server.url(bucket, prefix),
                        lambda p, b: client.put_object(Bucket=bucket, Key=base + p, Body=b),
                        get, names, unfinished, metadata)


def sftp_source(server: SshServer, root: Path) -> RemoteSource:
    root.mkdir(parents=True, exist_ok=True)

    def put(path: str, data: bytes) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    def get(path: str) -> bytes | None:
        try:
            return (root / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def names() -> set[str]:
        return {str(p.relative_to(root)) + ("/" if p.is_dir() else "")
                for p in root.rglob("*") if ".markfs-upload-" not in p.name}

    def unfinished() -> list[int]:
        return [p.stat().st_size for p in root.rglob(".*.markfs-upload-*")]

    return RemoteSource("sftp", server.url(root), put, get, names, unfinished)


def mount_remote(tmp_path: Path, data_dir: Path, source: RemoteSource,
                 config: str = "") -> Mount:
    add_source_now(data_dir, "r", source.url)
    if config:
        (data_dir / "markfs.toml").write_text("[mount]\n" + config)
    point = tmp_path / "mnt"
    point.mkdir(exist_ok=True)
    return Mount(data_dir, point).start()


def pending_while_down(mount: Mount, server: Stoppable, name: str, data: bytes) -> Path:
    """A file written through the mount while its server is down: its upload waits."""
    files = mount.path / "sources" / "r"
    os.listdir(files)  # listed while the server still answers
    server.stop()
    (files / name).write_bytes(data)
    return files / name


class Stoppable:
    """A server of this test alone, so stopping it disturbs no other test. An S3 server
    "stops" behind a proxy that closes every connection (moto's threaded server would
    go on serving connections boto3 keeps alive)."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        if kind == "s3":
            s3_env()
            self.s3 = S3Server()
            self.s3.start()
            self.proxy = StallingProxy(self.s3.port)
            source = s3_source(self.s3, "stoppable")
            self.source = dataclasses.replace(
                source, url=source.url.replace(self.s3.endpoint, self.proxy.endpoint))
        else:
            self.ssh = SshServer.create(tmp / "own-sshd")
            self.ssh.start()
            self.source = sftp_source(self.ssh, tmp / "own-root")

    def stop(self) -> None:
        if self.kind == "s3":
            self.proxy.cut()
        else:
            self.ssh.stop()

    def start(self) -> None:
        if self.kind == "s3":
            self.proxy.restore()
        else:
            self.ssh.start()

    def close(self) -> None:
        """The end of the test: everything of this server stops."""
        if self.kind == "s3":
            self.proxy.close()
            self.s3.stop()
        else:
            self.ssh.stop()


_fresh_buckets = itertools.count(1)


def source_for(request: Any, tmp_path: Path) -> RemoteSource:
    """An empty source on the server a fixture parameter names: "s3" (moto),
    "seaweedfs" or "sftp" (sshd); each S3 source in a bucket of its own."""
    if request.param == "sftp":
        return sftp_source(request.getfixturevalue("sshd"), tmp_path / "sftp-root")
    server = request.getfixturevalue("s3" if request.param == "s3" else "seaweed")
    return s3_source(server, f"bucket-{os.getpid()}-{next(_fresh_buckets)}")


def differences(source: Path, copy: Path) -> list[str]:
    """What `rsync -a --checksum` would still change in `copy` (nothing: a faithful copy)."""
    done = subprocess.run(["rsync", "-a", "--checksum", "--dry-run", "--itemize-changes",
                           f"{source}/", f"{copy}/"], capture_output=True, text=True,
                          check=True)
    return done.stdout.splitlines()


def fsync_all(top: Path) -> None:
    """Every upload below `top`, with its attributes, landed (fsync waits for them)."""
    for path in top.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def git_status_after_remount(mount: Mount, repo: Path) -> str:
    """A repository of six scripts (three executable) committed in `repo` inside the
    mount, then `git status --porcelain` after the mount was remounted."""
    repo.mkdir()
    for number in range(6):
        script = repo / f"run{number}.sh"
        script.write_text(f"echo {number}\n")
        script.chmod(0o755 if number % 2 else 0o644)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scripts"], check=True)
    fsync_all(repo)
    mount.remount()
    return subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout


class DaemonMetrics:
    """A mounted daemon's counters, read over its Prometheus endpoint (`[metrics]
    listen`): reading /.markfs/metrics would make requests of its own."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as answer:
            return str(answer.read().decode())

    def count(self, metric: str, label: str) -> int:
        """The sample of `metric` (e.g. "markfs_thread_hops_total") whose one label has
        the value `label`; 0 if there is none yet."""
        found = re.search(rf'^{metric}{{\w+="{re.escape(label)}"}} ([0-9.e+]+)$', self.text(),
                          re.M)
        return int(float(found[1])) if found else 0

    def hops(self, *functions: str) -> int:
        return sum(self.count("markfs_thread_hops_total", fn) for fn in functions)

    def requests(self, *ops: str) -> int:
        return sum(self.count("markfs_fuse_request_seconds_count", op) for op in ops)


def sftp_location(server: SshServer, root: Path) -> SftpLocation:
    parsed = parse_source_url(server.url(root)).location
    assert isinstance(parsed, SftpLocation)
    return parsed
