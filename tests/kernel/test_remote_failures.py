"""Remote sources when things go wrong: servers that stop, daemons that are killed,
keys that cannot be file names, host keys nobody trusted."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, run_markfs
from remote_helpers import Stoppable, mount_remote, pending_while_down, s3_source, wait_until
from servers import S3Server, SshServer

TIMEOUT_S = 2.0
FAST_FAIL = (f"io_timeout = {TIMEOUT_S}\nlist_timeout = {TIMEOUT_S}\n"
             "attr_ttl = 0.2\nentry_ttl = 0.2\ndir_ttl = 0.5\n")


@pytest.fixture(params=["s3", "sftp"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stoppable]:
    srv = Stoppable(request.param, tmp_path)
    try:
        yield srv
    finally:
        srv.close()


def listing_errno(folder: Path) -> int:
    try:
        os.listdir(folder)
    except OSError as exc:
        return exc.errno or 0
    return 0


def drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def test_cached_file_is_reread_without_the_server(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    server.source.put("cached.bin", data)
    m = mount_remote(tmp_path, data_dir, server.source, "dir_ttl = 600.0\n")
    try:
        path = m.path / "sources" / "r" / "cached.bin"
        assert path.read_bytes() == data
        server.stop()
        drop_page_cache()
        assert path.read_bytes() == data  # from the content cache: no request needed
    finally:
        m.stop()


def test_server_gone_mid_read_gives_eio_then_recovers(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    data = os.urandom(1024 * 1024) * 160  # past what the first streamed run (128 MiB) covers
    server.source.put("big.bin", data)
    m = mount_remote(tmp_path, data_dir, server.source, FAST_FAIL)
    try:
        path = m.path / "sources" / "r" / "big.bin"
        with open(path, "rb") as f:
            assert f.read(1024) == data[:1024]
            server.stop()
            started = time.monotonic()
            with pytest.raises(OSError) as exc:
                f.seek(150 * 1024 * 1024)
                f.read(1024)
            assert exc.value.errno == errno.EIO
            assert time.monotonic() - started < TIMEOUT_S * 6
        server.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert path.read_bytes() == data
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        m.stop()


def test_upload_retries_until_the_server_is_back(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    m = mount_remote(tmp_path, data_dir, server.source, FAST_FAIL)
    try:
        pending_while_down(m, server, "later.txt", b"queued while down")
        status = json.loads((m.path / ".markfs" / "status.json").read_text())
        assert status["uploads_pending"] == 1
        time.sleep(1.0)
        server.start()
        server.source.wait_for("later.txt", b"queued while down")
    finally:
        m.stop()


def test_kill_9_with_a_journaled_upload_then_remount_uploads_it(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    m = mount_remote(tmp_path, data_dir, server.source, FAST_FAIL)
    try:
        payload = os.urandom(5 * 1024 * 1024)  # its upload cannot finish before the kill
        pending_while_down(m, server, "survivor.bin", payload)
        assert m.proc is not None
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait()
        m.stop()
        server.start()
        assert "pending uploads: 1" in run_markfs(data_dir, "status").stdout
        m.start()
        server.source.wait_for("survivor.bin", payload)
    finally:
        m.stop()
    m.assert_fsck_clean()


def test_umount_waits_for_pending_uploads(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    run_markfs(data_dir, "source", "add", "r", server.source.url)
    point = tmp_path / "bg"
    point.mkdir()
    run_markfs(data_dir, "mount", str(point))
    try:
        payload = os.urandom(2 * 1024 * 1024)
        for i in range(5):
            (point / "sources" / "r" / f"f{i}").write_bytes(payload)
    finally:
        run_markfs(data_dir, "umount", str(point))
    for i in range(5):
        assert server.source.get(f"f{i}") == payload
    assert "pending uploads: 0 " in run_markfs(data_dir, "status").stdout


def test_bad_s3_keys_are_skipped_and_never_escape(
        s3: S3Server, tmp_path: Path, data_dir: Path) -> None:
    source = s3_source(s3, "badkeys", prefix="")
    for key in ("ok.txt", "a//b.txt", "./dot.txt", "../escape.txt", "d/../../x.txt",
                "long/" + "n" * 300):
        source.put(key, b"x")
    m = mount_remote(tmp_path, data_dir, source)
    try:
        root = m.path / "sources" / "r"
        assert sorted(os.listdir(root)) == ["a", "d", "long", "ok.txt"]
        assert os.listdir(root / "a") == []  # "a//b.txt": the empty segment is skipped
        assert os.listdir(root / "long") == []
        assert not (tmp_path / "escape.txt").exists()
    finally:
        m.stop()


def test_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path, data_dir: Path) -> None:
    other = tmp_path / "other_known_hosts"
    other.write_text("")
    url = (f"sftp://root@127.0.0.1:{sshd.port}{tmp_path}?key_file={sshd.client_key}"
           f"&known_hosts={other}")
    done = run_markfs(data_dir, "source", "add", "untrusted", url, check=False)
    assert done.returncode == 1 and "unknown host key" in done.stderr
    assert "source 'untrusted' cannot be used" in done.stderr and "--no-check" in done.stderr
    run_markfs(data_dir, "source", "add", "untrusted", url, "--no-check")  # offline
    done = run_markfs(data_dir, "source", "test", "untrusted", check=False)
    assert done.returncode == 1 and "unknown host key" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_s3_source_whose_bucket_is_missing_is_refused_at_add(
        s3: S3Server, data_dir: Path) -> None:
    url = s3.url(f"no-such-bucket-{os.getpid()}")
    done = run_markfs(data_dir, "source", "add", "lost", url, check=False)
    assert done.returncode == 1 and "source 'lost' cannot be used" in done.stderr
    assert "not found" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "lost" not in run_markfs(data_dir, "source", "list").stdout


def test_interrupted_folder_rename_on_s3_is_finished_at_start(
        s3: S3Server, tmp_path: Path, data_dir: Path) -> None:
    from markfs.catalog.journals import renames as rq
    from markfs.config import DataDir
    from markfs.namespace.tree import Tree

    source = s3_source(s3, "halfmoved")
    for name in ("old/a", "old/b", "old/sub/c"):
        source.put(name, name.encode())
    source.put("new/a", b"old/a")  # the crash came after the first copy
    run_markfs(data_dir, "source", "add", "r", source.url)
    tree = Tree.open(DataDir(data_dir))
    row = tree.catalog.sources.get_source("r")
    assert row is not None
    with tree.transaction() as txn:
        rq.begin(txn, row.id, b"old", b"new")
    tree.close()
    point = tmp_path / "mnt"
    point.mkdir()
    m = Mount(data_dir, point).start()
    try:
        deadline = time.monotonic() + 20
        while any(n.startswith("old/") for n in source.names()):
            assert time.monotonic() < deadline, source.names()
            time.sleep(0.1)
        assert {n for n in source.names() if n.startswith("new/")} == {
            "new/a", "new/b", "new/sub/c"}
        assert source.get("new/sub/c") == b"old/sub/c"
        assert sorted(os.listdir(point / "sources" / "r" / "new")) == ["a", "b", "sub"]
    finally:
        m.stop()


def test_a_source_that_stops_answering_is_shown_unreachable_then_ok_again(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    server.source.put("f.txt", b"x")
    m = mount_remote(tmp_path, data_dir, server.source, FAST_FAIL)
    folder = m.path / "sources" / "r"
    status = m.path / ".markfs" / "status.json"

    def state() -> dict[str, object]:
        return next(s for s in json.loads(status.read_text())["sources"] if s["name"] == "r")
    try:
        os.listdir(folder)
        assert state()["state"] == "ok"
        server.stop()
        for _ in range(3):  # listings past dir_ttl, each failing
            time.sleep(0.6)
            with contextlib.suppress(OSError):
                os.listdir(folder)
        assert state()["state"] == "unreachable" and state()["last_error"]
        said = str(state()["last_error"])  # everyone reads it: the source and the kind only
        assert said.startswith("r: ") and not any(
            secret in said for secret in ("://", "127.0.0.1", "?", str(tmp_path), "list-type"))
        out = run_markfs(data_dir, "status").stdout
        assert "UNREACHABLE since" in out and str(m.path) in out
        server.start()
        deadline = time.monotonic() + 20
        while state()["state"] != "ok":
            assert time.monotonic() < deadline, state()
            time.sleep(0.6)
            with contextlib.suppress(OSError):
                os.listdir(folder)
        assert "UNREACHABLE" not in run_markfs(data_dir, "status").stdout
    finally:
        m.stop()
    assert m.log.read_text().count("source r is unreachable") == 1  # once per change



def test_a_source_that_is_gone_is_refused_not_empty(
        server: Stoppable, tmp_path: Path, data_dir: Path) -> None:
    """The bucket deleted, or the source's folder deleted on the server (issue 24,
    part 4), while a file waited for its upload: the upload is parked at once (not
    retried forever), the source is `refused` with the reason in the log, a listing is
    EIO (not an empty folder), and `markfs umount` says so and returns (before: waited
    drain_timeout, 600 s)."""
    mount = mount_remote(tmp_path, data_dir, server.source, FAST_FAIL)
    folder = mount.path / "sources" / "r"
    status = mount.path / ".markfs" / "status.json"
    try:
        pending_while_down(mount, server, "lost.txt", b"cannot land")
        if server.kind == "s3":  # straight to the server, not through the proxy; moto's
            client: Any = server.s3.client()  # buckets outlive a test in this process
            for found in client.list_objects_v2(Bucket="stoppable").get("Contents", []):
                client.delete_object(Bucket="stoppable", Key=found["Key"])
            client.delete_bucket(Bucket="stoppable")
        else:
            (tmp_path / "own-root").rmdir()
        server.start()
        wait_until(lambda: "parked: lost.txt" in run_markfs(data_dir, "status").stdout, timeout=30)
        state = next(s for s in json.loads(status.read_text())["sources"] if s["name"] == "r")
        assert state["state"] == "refused", state
        wait_until(lambda: listing_errno(folder) == errno.EIO)  # (once past dir_ttl)
        done = run_markfs(data_dir, "umount", str(mount.path), check=False)
        assert done.returncode == 1 and "parked" in done.stderr, done.stderr
    finally:
        mount.stop()
    log = mount.log.read_text()
    assert "source r is refused" in log and ("NoSuchBucket" in log or "does not exist" in log)
