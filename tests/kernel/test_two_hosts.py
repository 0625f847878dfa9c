"""Two daemons over one catalog in PostgreSQL and one S3 source (SeaweedFS): each with
its own data directory and mount point, as two hosts would have them (issue 27). What
one does is seen by the other at once — through the change log and its NOTIFY, not a
cache's timeout."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, in_process, new_catalog_database, run_markfs
from remote_helpers import RemoteSource, s3_source, wait_until
from servers import PostgresServer, SeaweedServer

from markfs.namespace.files.sources import add_source


def config(**settings: float) -> str:
    """markfs.toml of a host: uploads at once, the feed's poll far off (what another host
    sees, it sees by a notification)."""
    return "[mount]\n" + "".join(f"{key} = {value}\n" for key, value in
                                 {"upload_delay": 0, "feed_poll": 3600, **settings}.items())


@dataclass
class Hosts:
    a: Mount
    b: Mount
    remote: RemoteSource
    url: str

    def files(self, mount: Mount) -> Path:
        return mount.path / "sources" / "r"


def data_dir_on(url: str, path: Path) -> Path:
    """A data directory as `markfs init --catalog URL` makes it."""
    run_markfs(path, "init", "--catalog", url)
    return path


@pytest.fixture
def hosts(tmp_path: Path, postgres: PostgresServer, seaweed: SeaweedServer) -> Iterator[Hosts]:
    yield from hosts_over(new_catalog_database(postgres), tmp_path, seaweed)


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server of the test's own, to restart."""
    root = Path(tempfile.mkdtemp(prefix="markfs-test-pg-own-"))
    server = PostgresServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def hosts_over(url: str, tmp_path: Path, seaweed: SeaweedServer) -> Iterator[Hosts]:
    remote = s3_source(seaweed, f"two-hosts-{os.getpid()}-{tmp_path.name[-12:].lower()}"
                       .replace("_", "-"))
    a_dir, b_dir = data_dir_on(url, tmp_path / "a"), data_dir_on(url, tmp_path / "b")
    in_process(lambda tree: add_source(tree, "r", remote.url, False), a_dir)
    for data_dir in (a_dir, b_dir):
        (data_dir / "markfs.toml").write_text(config())
    mounts = []
    for name, data_dir in (("ma", a_dir), ("mb", b_dir)):
        (tmp_path / name).mkdir()
        mounts.append(Mount(data_dir, tmp_path / name))
    try:
        for mount in mounts:
            mount.start()
        yield Hosts(mounts[0], mounts[1], remote, url)
    finally:
        for mount in mounts:
            mount.stop()
    for mount in mounts:
        mount.assert_log_clean()


def written(path: Path, data: bytes) -> None:
    """Written, fsynced (its upload done) and closed."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def seen(check: Any) -> None:
    """`check()` comes to hold (the hosts' feeds poll once an hour: by a notification)."""
    wait_until(check, timeout=30)


def test_a_file_written_and_closed_on_one_host_is_read_on_the_other(hosts: Hosts) -> None:
    listed_before = sorted(os.listdir(hosts.files(hosts.b)))
    written(hosts.files(hosts.a) / "report.csv", b"a,b\n1,2\n")
    assert (hosts.files(hosts.b) / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert sorted(os.listdir(hosts.files(hosts.b))) == sorted([*listed_before, "report.csv"])
    assert (os.stat(hosts.files(hosts.a) / "report.csv").st_ino
            == os.stat(hosts.files(hosts.b) / "report.csv").st_ino)
    status = run_markfs(hosts.b.data_dir, "status").stdout
    assert "(shared)" in status and "sessions: 2" in status and status.count(": live,") == 2
    assert "change feed: this host's cache at stamp" in status


def test_a_rename_on_one_host_is_seen_on_the_other_at_once(hosts: Hosts) -> None:
    a_files, b_files = hosts.files(hosts.a), hosts.files(hosts.b)
    written(a_files / "draft.txt", b"text")
    assert (b_files / "draft.txt").exists() and "draft.txt" in os.listdir(a_files)
    os.rename(b_files / "draft.txt", b_files / "final.txt")
    seen(lambda: not (a_files / "draft.txt").exists()
                and "final.txt" in os.listdir(a_files))
    assert (a_files / "final.txt").read_bytes() == b"text"
    os.mkdir(a_files / "folder")
    seen(lambda: (b_files / "folder").is_dir())


def test_a_tag_and_a_view_made_on_one_host_appear_on_the_other(hosts: Hosts) -> None:
    written(hosts.files(hosts.a) / "q1.parquet", b"PAR1")
    run_markfs(hosts.a.data_dir, "tag", "add", "finance", str(hosts.files(hosts.a) / "q1.parquet"))
    seen(lambda: "q1.parquet" in _listing(hosts.b.path / "tags" / "finance"))
    run_markfs(hosts.a.data_dir, "view", "add", "everything", "r:**")
    seen(lambda: "everything" in _listing(hosts.b.path / "views"))


def test_the_same_name_made_on_both_at_once_is_one_file_and_one_eexist(hosts: Hosts) -> None:
    results: dict[str, str] = {}

    def make(mount: Mount, data: bytes) -> None:
        try:
            fd = os.open(hosts.files(mount) / "once.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o644)
        except FileExistsError:
            results[mount.path.name] = "EEXIST"
            return
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        results[mount.path.name] = "made"

    for _round in range(5):
        for name in ("once.txt",):
            for mount in (hosts.a, hosts.b):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(hosts.files(mount) / name)
        results.clear()
        threads = [threading.Thread(target=make, args=(m, m.path.name.encode()))
                   for m in (hosts.a, hosts.b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == ["EEXIST", "made"], results
        maker = hosts.a if results["ma"] == "made" else hosts.b
        wait_until(lambda m=maker: hosts.remote.get("once.txt") == m.path.name.encode())
        assert _catalog_rows(hosts.url, b"once.txt") == 1


def test_a_host_that_was_down_catches_up_from_the_log(hosts: Hosts) -> None:
    hosts.b.stop()
    for number in range(20):
        written(hosts.files(hosts.a) / f"while-away-{number}", b"%d" % number)
    os.rename(hosts.files(hosts.a) / "while-away-0", hosts.files(hosts.a) / "renamed")
    hosts.b.start()
    names = set(os.listdir(hosts.files(hosts.b)))
    assert {f"while-away-{n}" for n in range(1, 20)} | {"renamed"} <= names
    assert "while-away-0" not in names


def test_a_host_killed_with_uploads_pending_keeps_them_and_finishes_them_itself(
        hosts: Hosts) -> None:
    """Its journal rows name its staged copies, on its own disk: the other host never
    takes them over (before: it did, judging A's pid by its own processes); A's restart
    sends them."""
    hosts.a.stop()
    (hosts.a.data_dir / "markfs.toml").write_text(config(upload_delay=3600))
    hosts.a.start()
    (hosts.files(hosts.a) / "late.bin").write_bytes(b"L" * 100_000)
    owner = _upload_owners(hosts.url)
    assert len(owner) == 1 and "@" in owner[0], owner
    assert hosts.a.proc is not None
    hosts.a.proc.kill()
    hosts.a.proc.wait()
    hosts.a.stop()
    hosts.b.stop()
    hosts.b.start()  # (its uploader looks for orphaned rows as it starts)
    assert _upload_owners(hosts.url) == owner
    assert hosts.remote.get("late.bin") is None
    a_host = (hosts.a.data_dir / "host.id").read_text().strip()
    status = run_markfs(hosts.b.data_dir, "status").stdout
    assert f"pending uploads of host {a_host}: 1 (100000 bytes" in status, status
    (hosts.a.data_dir / "markfs.toml").write_text(config())
    hosts.a.start()
    wait_until(lambda: hosts.remote.get("late.bin") == b"L" * 100_000)
    wait_until(lambda: not _upload_owners(hosts.url))
    assert (hosts.files(hosts.b) / "late.bin").read_bytes() == b"L" * 100_000


def test_a_paused_host_writes_nothing_once_its_session_lapsed(hosts: Hosts) -> None:
    """SIGSTOP past the session's TTL (by the server's clock), then SIGCONT: the request
    waiting in the kernel fails with EIO and nothing of it is visible; the host registers
    a new session and writes again."""
    hosts.a.stop()
    (hosts.a.data_dir / "markfs.toml").write_text(
        config(session_ttl=3, entry_ttl=60, attr_ttl=60))
    hosts.a.start()
    target = hosts.files(hosts.a) / "kept.txt"
    written(target, b"kept")
    os.stat(target)  # (its name and attributes in the kernel's cache: no LOOKUP later)
    first = _sessions(hosts.url, hosts.a)
    assert len(first) == 1
    assert hosts.a.proc is not None
    os.kill(hosts.a.proc.pid, signal.SIGSTOP)
    try:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)],
                                  stdout=subprocess.PIPE, text=True)
        wait_until(lambda: _lapsed(hosts.url, first[0]), timeout=30)
    finally:
        os.kill(hosts.a.proc.pid, signal.SIGCONT)
    out, _ = writer.communicate(timeout=30)
    assert out.strip() == f"error {errno.EIO}", out
    assert b"user.late" not in _xattrs(hosts.files(hosts.b) / "kept.txt")
    wait_until(lambda: _try_setxattr(target))
    again = _sessions(hosts.url, hosts.a)
    assert len(again) == 1 and again[0] != first[0]
    wait_until(lambda: b"user.again" in _xattrs(hosts.files(hosts.b) / "kept.txt"))


def test_a_stalled_catalog_server_fails_what_needs_it_in_time_and_answers_the_rest(
        hosts: Hosts, postgres: PostgresServer) -> None:
    """The catalog's server stopped (SIGSTOP of its postmaster and of every process
    serving the daemon's connections — the writer's, its read pool's, its session's —
    whose TCP peers still acknowledge, so nothing times out on its own): each request
    that needs the catalog — a mkdir, a file's xattrs, statfs (its node count),
    status.json — fails with EIO after `io_timeout`; a stat, which needs none, is
    answered all the while (the catalog's work runs off the trio loop); after SIGCONT
    the daemon writes again. Before: the first statement stopped the loop, and every
    request to the mount waited with it (the xattrs, statfs and status.json until
    2026-12-06)."""
    hosts.b.stop()
    hosts.a.stop()
    (hosts.a.data_dir / "markfs.toml").write_text(
        config(io_timeout=3, entry_ttl=0, attr_ttl=0, dir_ttl=3600))
    hosts.a.start()
    files = hosts.files(hosts.a)
    written(files / "kept.txt", b"kept")
    status = hosts.a.path / ".markfs" / "status.json"
    asked = [("mkdir", files / "during"), ("getxattr", files / "kept.txt"),
             ("listxattr", files / "kept.txt"), ("statfs", files), ("read", status)]
    assert postgres.proc is not None
    stopped = [postgres.proc.pid, *_markfs_backends(hosts.url)]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        calls = [subprocess.Popen([sys.executable, "-c", CALL, op, str(path)],
                                  stdout=subprocess.PIPE, text=True) for op, path in asked]
        stats = 0
        while any(call.poll() is None for call in calls):
            subprocess.run(["stat", str(files / "kept.txt")], check=True,
                           capture_output=True, timeout=20)
            stats += 1
        answers = {op: call.communicate()[0].strip() for (op, _), call
                   in zip(asked, calls, strict=True)}
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert answers == {op: f"error {errno.EIO}" for op, _ in asked}
    assert stats >= 2
    wait_until(lambda: _made(files / "after"))
    assert (files / "kept.txt").read_bytes() == b"kept"
    assert b'"sources"' in status.read_bytes() and os.statvfs(files).f_files > 0
    metrics = (hosts.a.path / ".markfs" / "metrics").read_text()
    timeouts = {kind: float(value) for kind, value in re.findall(
        r'^markfs_catalog_timeouts_total\{kind="(\w+)"\} (\S+)$', metrics, re.M)}
    assert timeouts.get("write", 0) >= 1 and timeouts.get("read", 0) >= 4, timeouts


CALL = """
import os, sys
op, path = sys.argv[1], sys.argv[2]
calls = {"mkdir": lambda: os.mkdir(path), "getxattr": lambda: os.getxattr(path, "user.x"),
         "listxattr": lambda: os.listxattr(path), "statfs": lambda: os.statvfs(path),
         "read": lambda: open(path, "rb").read()}
try:
    calls[op]()
    print("answered")
except OSError as exc:
    print("error", exc.errno)
"""


def _markfs_backends(url: str) -> list[int]:
    """The pids of the server processes behind the one daemon's connections (its
    catalog's, its pools' of readers and writers, its session's, its feed's)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT pid, application_name FROM pg_stat_activity WHERE "
                            "application_name LIKE 'markfs%' AND datname = "
                            "current_database()").fetchall()
    assert [name for _, name in rows].count("markfs") == 1, rows
    return [int(pid) for pid, _ in rows]


def _made(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return False
    return True


WRITER = """
import os, sys
try:
    os.setxattr(sys.argv[1], "user.late", b"1")
    print("written")
except OSError as exc:
    print("error", exc.errno)
"""


def _sessions(url: str, mount: Mount) -> list[int]:
    import psycopg

    assert mount.proc is not None
    with psycopg.connect(url) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM sessions WHERE pid = %s ORDER BY id", (mount.proc.pid,))]


def _lapsed(url: str, session_id: int) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT renewed_us + ttl_us < CAST(EXTRACT(EPOCH FROM clock_timestamp()) "
            "* 1000000 AS BIGINT) FROM sessions WHERE id = %s", (session_id,)).fetchone()
    return bool(row and row[0])


def _xattrs(path: Path) -> list[bytes]:
    return [name.encode() for name in os.listxattr(path)]


def _try_setxattr(path: Path) -> bool:
    try:
        os.setxattr(path, "user.again", b"1")
    except OSError:
        return False
    return True


def test_a_restarted_catalog_server_fails_writes_meanwhile_then_both_hosts_catch_up(
        tmp_path: Path, own_postgres: PostgresServer, seaweed: SeaweedServer) -> None:
    for hosts in hosts_over(new_catalog_database(own_postgres), tmp_path, seaweed):
        a_files, b_files = hosts.files(hosts.a), hosts.files(hosts.b)
        written(a_files / "before", b"1")
        assert (b_files / "before").read_bytes() == b"1"

        def while_down(where: Path = a_files, log: Path = hosts.a.data_dir / "logs" /
                       "markfs.log") -> None:
            with pytest.raises(OSError) as failed:
                os.setxattr(where / "before", "user.down", b"1")
            assert failed.value.errno == errno.EIO
            # the uploader's loop met the outage too (before: it ended the daemon)
            wait_until(lambda: "reading the upload journal" in log.read_text())
        own_postgres.restart(while_down)
        wait_until(lambda where=a_files: _try_setxattr(where / "before"))
        written(a_files / "after", b"2")
        # (B's feed reconnects after its own back-off: within a second or two)
        seen(lambda where=b_files: (where / "after").exists())
        assert (b_files / "after").read_bytes() == b"2"
        assert b"user.again" in _xattrs(b_files / "before")


def test_one_data_dir_given_to_two_hosts_is_refused_by_the_second(hosts: Hosts,
                                                                    tmp_path: Path) -> None:
    """A's data directory mounted on a machine of another name (its own UTS namespace):
    one line, and A serves on."""
    (tmp_path / "elsewhere").mkdir()
    done = subprocess.run(
        ["unshare", "--uts", "sh", "-c", 'hostname other-host && exec "$@"', "sh",
         sys.executable, "-m", "markfs", "--data-dir", str(hosts.a.data_dir), "mount",
         str(tmp_path / "elsewhere"), "--foreground"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by host" in lines[0], done.stderr
    written(hosts.files(hosts.a) / "still.txt", b"served")
    assert (hosts.files(hosts.b) / "still.txt").read_bytes() == b"served"


def test_an_unreachable_catalog_at_mount_is_one_line(tmp_path: Path,
                                                     postgres: PostgresServer) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing"
    (tmp_path / "d").mkdir(mode=0o700)
    (tmp_path / "d" / "catalog.url").write_text(url + "\n")
    (tmp_path / "m").mkdir()
    done = run_markfs(tmp_path / "d", "mount", str(tmp_path / "m"), check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the catalog" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_init_refuses_a_password_in_the_catalog_url_and_prints_none(tmp_path: Path) -> None:
    done = run_markfs(tmp_path / "d", "init", "--catalog",
                      "postgresql://me:s3cret@127.0.0.1:5432/cat", check=False)
    assert done.returncode == 1 and "s3cret" not in done.stderr + done.stdout
    assert "password" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "catalog.url").exists()


def _listing(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _catalog_rows(url: str, name: bytes) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM nodes WHERE name = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def _upload_owners(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT owner FROM uploads ORDER BY id")]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


