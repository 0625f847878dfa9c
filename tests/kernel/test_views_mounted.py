"""Views, tags and categories through the kernel, over a local source and real S3 (moto)
and SFTP (sshd) sources."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount, run_markfs
from remote_helpers import RemoteSource, source_for

A_CSV = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, an odd size
# the catalog's part of these (views, tags, categories, inodes) on both engines
pytestmark = pytest.mark.both_engines  # the whole module on SQLite and on PostgreSQL



@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    source = source_for(request, tmp_path)
    source.put("finance/2024/q1/a.csv", A_CSV)
    source.put("finance/2024/q2/b.csv", b"b v1")
    source.put("finance/2023/old.csv", b"old")
    source.put("inbox/keep.txt", b"k")
    return source


@pytest.fixture
def vmount(tmp_path: Path, data_dir: Path, backing: Path, remote: RemoteSource
           ) -> Iterator[Mount]:
    """View `fin`: the remote's finance/2024 tree and the local reports' CSVs; new files
    land in the remote's inbox."""
    (backing / "reports").mkdir()
    (backing / "reports" / "finance_q1.csv").write_bytes(b"local report")
    (backing / "reports" / "notes.txt").write_bytes(b"not a csv")
    run_markfs(data_dir, "source", "add", "r", remote.url)
    (data_dir / "markfs.toml").write_text("[mount]\ndir_ttl = 1\n")
    run_markfs(data_dir, "view", "add", "fin", "r:finance/2024/**", "loc:reports/*.csv",
               "--landing", "r/inbox")
    point = tmp_path / "mnt"
    point.mkdir()
    yield from Mount(data_dir, point).start().checked()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def until(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_a_view_gathers_both_sources_with_their_paths(vmount: Mount) -> None:
    view = vmount.path / "views" / "fin"
    assert sorted(os.listdir(view)) == ["finance_q1.csv", "q1", "q2"]
    assert os.listdir(view / "q1") == ["a.csv"]
    assert (view / "finance_q1.csv").read_bytes() == b"local report"


def test_a_member_read_through_the_view_equals_the_source(
        vmount: Mount, remote: RemoteSource) -> None:
    in_view = vmount.path / "views/fin/q1/a.csv"
    in_source = vmount.path / "sources/r/finance/2024/q1/a.csv"
    assert sha(in_view.read_bytes()) == sha(in_source.read_bytes()) == sha(A_CSV)
    a, b = os.stat(in_view), os.stat(in_source)
    assert (a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns)


def test_a_write_through_the_view_reaches_the_server(
        vmount: Mount, remote: RemoteSource) -> None:
    (vmount.path / "views/fin/q2/b.csv").write_bytes(b"b v2, written through the view")
    remote.wait_for("finance/2024/q2/b.csv", b"b v2, written through the view")
    assert (vmount.path / "sources/r/finance/2024/q2/b.csv").read_bytes() == (
        b"b v2, written through the view")


def test_a_file_made_in_the_view_lands_in_its_landing_folder(
        vmount: Mount, remote: RemoteSource) -> None:
    (vmount.path / "views/fin/new.csv").write_bytes(b"landed")
    remote.wait_for("inbox/new.csv", b"landed")
    assert "new.csv" in os.listdir(vmount.path / "views/fin")


def test_rm_and_mv_in_a_view_never_touch_source_data(
        vmount: Mount, remote: RemoteSource) -> None:
    view = vmount.path / "views/fin"
    with pytest.raises(PermissionError):
        (view / "q1" / "a.csv").unlink()
    with pytest.raises(OSError) as moved:
        os.rename(view / "q1" / "a.csv", view / "a.csv")
    assert moved.value.errno == errno.EROFS
    assert remote.get("finance/2024/q1/a.csv") == A_CSV


def test_a_file_put_on_the_server_appears_in_the_view(
        vmount: Mount, remote: RemoteSource) -> None:
    q1 = vmount.path / "views/fin/q1"
    assert os.listdir(q1) == ["a.csv"]
    remote.put("finance/2024/q1/late.csv", b"late")
    until(lambda: "late.csv" in os.listdir(q1))
    assert (q1 / "late.csv").read_bytes() == b"late"


def test_view_inodes_stay_across_a_remount(vmount: Mount) -> None:
    paths = [vmount.path / p for p in ("views/fin", "views/fin/q1", "views/fin/q1/a.csv")]
    before = [os.stat(p).st_ino for p in paths]
    vmount.remount()
    assert [os.stat(p).st_ino for p in paths] == before


def test_a_view_can_be_mounted_alone(vmount: Mount) -> None:
    vmount.stop()
    vmount.root = "views/fin"
    vmount.start()
    assert sorted(os.listdir(vmount.path)) == ["finance_q1.csv", "q1", "q2"]
    assert sha((vmount.path / "q1/a.csv").read_bytes()) == sha(A_CSV)


# -- one local source -----------------------------------------------------------------------

def test_two_files_of_one_name_are_both_listed_in_the_mount(
        mount: Mount, data_dir: Path, backing: Path) -> None:
    for folder in ("x", "y"):
        (backing / folder).mkdir()
        (backing / folder / "same.txt").write_bytes(folder.encode())
    run_markfs(data_dir, "source", "add", "loc2", f"file://{backing}/y")
    run_markfs(data_dir, "view", "add", "both", "loc:x/*", "loc2:*")
    view = mount.path / "views" / "both"
    until(lambda: "same~loc.txt" in os.listdir(view))
    assert sorted(os.listdir(view)) == ["same~loc.txt", "same~loc2.txt"]
    assert (view / "same~loc2.txt").read_bytes() == b"y"


def test_tags_set_with_setfattr_are_listed_by_the_cli_and_found_by_search(
        mount: Mount, data_dir: Path, src: Path) -> None:
    (src / "report.csv").write_bytes(b"r")
    os.setxattr(src / "report.csv", "user.markfs.tags", b"finance,q4")
    assert os.getxattr(src / "report.csv", "user.markfs.tags") == b"finance,q4"
    assert os.listdir(mount.path / "tags" / "q4") == ["report.csv"]
    listed = run_markfs(data_dir, "tag", "list").stdout
    assert "q4\t1\t/tags/q4" in listed
    found = run_markfs(data_dir, "search", "q4").stdout
    assert "/sources/loc/report.csv\ttagged" in found


def test_tags_given_by_the_cli_show_under_tags_and_as_the_xattr(
        mount: Mount, data_dir: Path, src: Path) -> None:
    (src / "a.txt").write_bytes(b"a")
    run_markfs(data_dir, "tag", "add", "audit", "/sources/loc/a.txt")
    until(lambda: "audit" in os.listdir(mount.path / "tags"))
    assert os.getxattr(src / "a.txt", "user.markfs.tags") == b"audit"
    assert (mount.path / "tags/audit/a.txt").read_bytes() == b"a"


def test_the_categories_tree_shows_sub_categories_and_files(
        mount: Mount, data_dir: Path, src: Path) -> None:
    (src / "ledger.csv").write_bytes(b"l")
    run_markfs(data_dir, "category", "add", "finance/2024/audit")
    run_markfs(data_dir, "category", "assign", "finance/2024", "/sources/loc/ledger.csv")
    year = mount.path / "categories" / "finance" / "2024"
    until(lambda: year.is_dir() and "ledger.csv" in os.listdir(year))
    assert sorted(os.listdir(year)) == ["audit", "ledger.csv"]
    assert os.stat(year / "ledger.csv").st_ino == os.stat(src / "ledger.csv").st_ino


def test_a_view_without_landing_refuses_new_files(mount: Mount, data_dir: Path,
                                                  src: Path) -> None:
    (src / "a.csv").write_bytes(b"a")
    run_markfs(data_dir, "view", "add", "plain", "loc:*.csv")
    view = mount.path / "views" / "plain"
    until(lambda: view.is_dir())
    with pytest.raises(OSError) as made:
        (view / "new.csv").write_bytes(b"x")
    assert made.value.errno == errno.EROFS
    assert not (src / "new.csv").exists()


def test_rm_of_a_pinned_member_unpins_it_and_keeps_the_file(
        mount: Mount, data_dir: Path, src: Path) -> None:
    (src / "keep.txt").write_bytes(b"k")
    run_markfs(data_dir, "view", "add", "picked", "loc:*.csv")
    run_markfs(data_dir, "view", "pin", "picked", "/sources/loc/keep.txt")
    view = mount.path / "views" / "picked"
    until(lambda: view.is_dir() and "keep.txt" in os.listdir(view))
    (view / "keep.txt").unlink()
    assert "keep.txt" not in os.listdir(view)
    assert (src / "keep.txt").read_bytes() == b"k"
    assert "pinned" not in run_markfs(data_dir, "view", "show", "picked").stdout


def test_paths_are_taken_as_users_type_them_inside_a_mount(
        mount: Mount, data_dir: Path, src: Path, tmp_path: Path) -> None:
    """A real path inside a mount of this data dir, absolute or relative to the current
    folder — also through a --root mount — is as good as the mount path (issue 24,
    part 8; before: "no such path in the mount: /q4.csv")."""
    import subprocess
    import sys

    (src / "finance").mkdir()
    for name in ("q4.csv", "q3.csv", "q2.csv"):
        (src / "finance" / name).write_bytes(name.encode())
    run_markfs(data_dir, "category", "add", "c")
    run_markfs(data_dir, "view", "add", "v", "loc:none/*")
    sub = Mount(data_dir, tmp_path / "sub", root="sources/loc/finance")
    sub.path.mkdir()
    sub.start()
    try:
        def markfs_in(cwd: Path, *args: str) -> None:
            done = subprocess.run([sys.executable, "-m", "markfs", "--data-dir", str(data_dir),
                                   *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr

        markfs_in(src / "finance", "tag", "add", "q4", "./q4.csv")
        markfs_in(tmp_path, "tag", "add", "q3", str(src / "finance" / "q3.csv"))
        markfs_in(sub.path, "category", "assign", "c", "q2.csv")
        markfs_in(src, "view", "pin", "v", "finance/q4.csv")
    finally:
        sub.stop()
    assert run_markfs(data_dir, "tag", "list", "/sources/loc/finance/q4.csv").stdout == "q4\n"
    assert run_markfs(data_dir, "tag", "list", "/sources/loc/finance/q3.csv").stdout == "q3\n"
    assert run_markfs(data_dir, "category", "list").stdout == "/categories/c\t1\n"
    assert "/sources/loc/finance/q4.csv" in run_markfs(data_dir, "view", "show", "v").stdout
    until(lambda: os.listdir(mount.path / "categories" / "c") == ["q2.csv"])


def test_a_view_of_many_spans_over_a_deep_tree_is_listed_to_its_bottom(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    """Through the kernel: every folder of the view down to depth 150 (before: the
    daemon spent minutes of CPU in the first folders, every request waiting)."""
    deep = backing / "/".join(["d"] * 150)
    deep.mkdir(parents=True)
    (deep / "x.csv").write_text("found")
    run_markfs(data_dir, "view", "add", "deep", "loc:" + "/".join(["**"] * 20) + "/x*")
    (tmp_path / "mnt").mkdir()
    mount = Mount(data_dir, tmp_path / "mnt").start()
    try:
        found = (mount.path / "views" / "deep" / "/".join(["d"] * 150) / "x.csv")
        assert found.read_text() == "found"
        assert os.stat(mount.path / "sources" / "loc" / "d").st_nlink >= 2
    finally:
        mount.stop()
    mount.assert_log_clean()
