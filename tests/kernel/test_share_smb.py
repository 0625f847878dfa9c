"""`markfs share smb` (issue 12, part 1): the share it prints, loaded by a real smbd on a
loopback port, serves a markfs mount with an S3 source, a managed table and a view to
smbclient — listing, a 64 MiB get with equal bytes, a put that reaches S3, rename and
delete; a read-only share and a table folder refuse writes."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest
from conftest import Mount, in_process, run_markfs
from remote_helpers import RemoteSource, s3_source
from servers import S3Server, SambaServer

BIG = 64 * 1024 * 1024
# every access through the share `visitor` is made as this user (not "nobody": Samba
# gives its guest account a token of its own, which the mount's owner never matches)
VISITOR = pwd.getpwnam("daemon")


@dataclass
class Shared:
    mount: Mount
    smb: SambaServer
    lake: RemoteSource
    data_dir: Path
    work: Path


@pytest.fixture(scope="module")
def shared(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A mount (allow_other, owned by VISITOR) of an S3 source `lake`, a local source
    `home`, a managed SQLite table and a view, shared by smbd as `data` (read-write),
    `frozen` (read-only) and `visitor` (as VISITOR); one for the module (each
    test uses files of its own)."""
    tmp_path = tmp_path_factory.mktemp("smb")
    data_dir = tmp_path / "data"
    in_process(lambda tree: None, data_dir)
    lake = s3_source(s3, f"smb-{os.getpid()}-{os.urandom(3).hex()}")
    lake.put("in/big.bin", os.urandom(BIG))
    for name in ("report.csv", "moved.csv"):
        lake.put(f"in/{name}", b"a,b\n1,2\n")
    shop = tmp_path / "shop.db"
    conn = apsw.Connection(str(shop))
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(50)])
    conn.close()
    run_markfs(data_dir, "source", "add", "lake", lake.url)
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{shop}")
    run_markfs(data_dir, "manage", "shop/main/items")
    run_markfs(data_dir, "view", "add", "reports", "lake:in/*.csv")
    home = tmp_path / "home"
    for folder, owner in (("theirs", VISITOR.pw_uid), ("locked", 0)):
        (home / folder).mkdir(parents=True)
        os.chown(home / folder, owner, owner)
    (home / "locked").chmod(0o700)
    (home / "locked" / "secret.csv").write_text("root's own\n")  # 0644, in a 0700 folder
    (home / "theirs" / "open.csv").write_text("anyone's\n")
    run_markfs(data_dir, "source", "add", "home", f"file://{home}")
    run_markfs(data_dir, "view", "add", "homes", "home:**/*.csv")
    outside = Path(tempfile.mkdtemp(prefix="markfs-smb-"))  # pytest's tmp is 0700: smbd,
    os.chmod(outside, 0o755)  # as the visitor, could not reach the share's path below it
    point = outside / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start("--allow-other", "--uid", VISITOR.pw_name,
                                       "--gid", str(VISITOR.pw_gid))
    try:
        shares = "".join(
            run_markfs(data_dir, "share", "smb", str(point), "--name", name, *extra).stdout
            for name, extra in (("data", []), ("frozen", ["--read-only"]), ("visitor", [])))
        shares += f"   force user = {VISITOR.pw_name}\n"  # (the share `visitor`)
        smb = SambaServer.create(tmp_path / "samba", shares)
        smb.start()
        try:
            yield Shared(mount, smb, lake, data_dir, tmp_path)
        finally:
            smb.stop()
    finally:
        mount.stop()
        shutil.rmtree(outside)
    mount.assert_fsck_clean()


def ok(done: object) -> str:
    out = f"{done.stdout}{done.stderr}"  # type: ignore[attr-defined]
    assert done.returncode == 0 and "NT_STATUS" not in out, out  # type: ignore[attr-defined]
    return out


def test_a_listing_over_smb_shows_sources_tables_and_views(shared: Shared) -> None:
    out = ok(shared.smb.client("data", "ls", "ls sources\\lake\\in\\*", "ls views\\reports\\*"))
    for name in ("sources", "tables", "views", "big.bin", "report.csv"):
        assert name in out


def test_a_64_mib_file_read_over_smb_has_the_same_bytes(shared: Shared) -> None:
    local = shared.work / "got.bin"
    ok(shared.smb.client("data", f"get sources\\lake\\in\\big.bin {local}"))
    assert hashlib.sha256(local.read_bytes()).digest() == hashlib.sha256(
        shared.lake.get("in/big.bin") or b"").digest()


def test_a_file_put_over_smb_reaches_s3_after_close(shared: Shared) -> None:
    local = shared.work / "up.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    ok(shared.smb.client("data", f"put {local} sources\\lake\\in\\up.bin"))
    shared.lake.wait_for("in/up.bin", local.read_bytes())


def test_rename_and_delete_over_smb_reach_s3(shared: Shared) -> None:
    ok(shared.smb.client("data", "rename sources\\lake\\in\\moved.csv sources\\lake\\in\\r2.csv"))
    shared.lake.wait_for("in/r2.csv", b"a,b\n1,2\n")
    assert shared.lake.get("in/moved.csv") is None
    ok(shared.smb.client("data", "del sources\\lake\\in\\r2.csv"))
    assert shared.lake.get("in/r2.csv") is None


def test_data_parquet_over_smb_is_exactly_the_snapshot(shared: Shared) -> None:
    local = shared.work / "data.parquet"
    ok(shared.smb.client("data", f"get tables\\shop\\main\\items\\data.parquet {local}"))
    assert local.read_bytes() == (
        shared.mount.path / "tables" / "shop" / "main" / "items" / "data.parquet").read_bytes()
    assert local.read_bytes()[:4] == b"PAR1"


def test_a_read_only_share_refuses_writes(shared: Shared) -> None:
    local = shared.work / "no.txt"
    local.write_text("refused")
    done = shared.smb.client("frozen", f"put {local} sources\\lake\\in\\no.txt")
    assert "NT_STATUS_ACCESS_DENIED" in done.stdout + done.stderr
    assert shared.lake.get("in/no.txt") is None


def test_a_table_folder_refuses_writes_over_smb(shared: Shared) -> None:
    local = shared.work / "no.txt"
    local.write_text("refused")
    done = shared.smb.client("data", f"put {local} tables\\shop\\main\\items\\no.txt")
    assert "NT_STATUS_" in done.stdout + done.stderr
    assert not (shared.mount.path / "tables" / "shop" / "main" / "items" / "no.txt").exists()


# -- the command's refusals (no smbd needed) ------------------------------------------

def test_share_smb_refuses_a_folder_that_is_not_a_markfs_mount(
        data_dir: Path, tmp_path: Path) -> None:
    done = run_markfs(data_dir, "share", "smb", str(tmp_path), check=False)
    assert done.returncode == 1 and "is not a markfs mount point" in done.stderr
    assert "Traceback" not in done.stderr


def test_share_smb_refuses_a_mount_without_allow_other(mount: Mount) -> None:
    done = run_markfs(mount.data_dir, "share", "smb", str(mount.path), check=False)
    assert done.returncode == 1 and "--allow-other" in done.stderr


def test_share_refuses_a_root_outside_the_mount(tmp_path: Path, data_dir: Path,
                                                backing: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        for protocol, extra in (("smb", []), ("nfs", ["--clients", "127.0.0.1"])):
            done = run_markfs(data_dir, "share", protocol, str(point), "--root", "../..",
                              *extra, check=False)
            assert done.returncode == 1 and "outside the mount" in done.stderr
    finally:
        mount.stop()


def test_share_smb_writes_the_definition_to_a_file(tmp_path: Path, data_dir: Path,
                                                   backing: Path) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        out = tmp_path / "share.conf"
        run_markfs(data_dir, "share", "smb", str(point), "--root", "sources/loc",
                   "--users", "daemon,bin,@root", "--write", str(out))
    finally:
        mount.stop()
    text = out.read_text()
    assert "[loc]" in text and f"path = {point}/sources/loc" in text
    assert "valid users = daemon bin @root" in text and "kernel oplocks = no" in text
    assert "wide links = no" in text
    conf = tmp_path / "smb.conf"  # Samba reads exactly the one share it was given
    conf.write_text("[global]\n   server role = standalone server\n" + text)
    parsed = subprocess.run(["testparm", "-s", str(conf)], capture_output=True, text=True,
                            check=True).stdout
    assert re.findall(r"^\[(.*)\]$", parsed, re.M) == ["global", "loc"]
    assert "wide links" not in parsed.split("[loc]")[0]


@pytest.mark.parametrize("extra, fragment", [
    (["--name", "evil]\n[global]\n allow insecure wide links = yes\n[x"], "invalid share name"),
    (["--name", "a=b"], "invalid share name"),
    (["--name", "[x]"], "invalid share name"),
    (["--name", "Global"], "Samba reserves it"),
    (["--name", "ok", "--users", "nosuchuser-42"], "no such user"),
    (["--name", "ok", "--users", "@nosuchgroup-42"], "no such group"),
    (["--name", "ok", "--users", "root\n[global]"], "invalid user name"),
    (["--name", "ok", "--root", "sources/loc/evil\n[global]"], "control character"),
])
def test_share_smb_refuses_what_would_change_sambas_config(
        tmp_path: Path, data_dir: Path, backing: Path, extra: list[str], fragment: str) -> None:
    (backing / "evil\n[global]").mkdir()
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        done = run_markfs(data_dir, "share", "smb", str(point), *extra, check=False)
    finally:
        mount.stop()
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert fragment in done.stderr and "[global]" not in done.stdout + done.stderr


def test_a_table_of_a_database_the_user_cannot_read_is_not_read_over_smb(
        shared: Shared) -> None:
    """shop.db is root's, in root's 0700 folders: its table files are root's alone, for
    the visitor over SMB too (the mount is the visitor's, --uid: before, data.csv was
    0444 and anyone read it)."""
    local = shared.work / "stolen.csv"
    done = shared.smb.client("visitor", f"get tables\\shop\\main\\items\\data.csv {local}")
    assert "NT_STATUS_ACCESS_DENIED" in done.stdout + done.stderr, done.stdout
    assert not local.exists() or local.stat().st_size == 0


def test_a_view_shows_a_user_over_smb_only_what_the_user_could_reach(
        shared: Shared) -> None:
    """`secret.csv` (0644) sits in root's 0700 folder: not listed or read through the
    view by the visitor (before: listed and read), while root still gets it."""
    listed = ok(shared.smb.client("visitor", "ls views\\homes\\locked\\*",
                                  "ls views\\homes\\theirs\\*"))
    assert "open.csv" in listed and "secret.csv" not in listed
    stolen = shared.work / "secret-copy.csv"
    done = shared.smb.client("visitor", f"get views\\homes\\locked\\secret.csv {stolen}")
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in done.stdout + done.stderr, done.stdout
    assert not stolen.exists() or stolen.read_text() != "root's own\n"
    ok(shared.smb.client("data", f"get views\\homes\\locked\\secret.csv {stolen}"))
    assert stolen.read_text() == "root's own\n"


def test_a_user_who_owns_the_mount_writes_to_s3_over_smb(shared: Shared) -> None:
    local = shared.work / "visit.txt"
    local.write_text("from the visitor")
    ok(shared.smb.client("visitor", f"put {local} sources\\lake\\in\\visit.txt"))
    shared.lake.wait_for("in/visit.txt", b"from the visitor")


def test_a_user_writes_over_smb_only_where_the_disks_modes_let_them(shared: Shared) -> None:
    local = shared.work / "mine.txt"
    local.write_text("mine")
    ok(shared.smb.client("visitor", f"put {local} sources\\home\\theirs\\mine.txt"))
    assert os.stat(shared.work / "home" / "theirs" / "mine.txt").st_uid == VISITOR.pw_uid
    done = shared.smb.client("visitor", f"put {local} sources\\home\\locked\\mine.txt")
    assert "NT_STATUS_ACCESS_DENIED" in done.stdout + done.stderr
    assert not (shared.work / "home" / "locked" / "mine.txt").exists()
