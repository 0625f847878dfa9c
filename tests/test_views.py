"""Views, tags and categories, driven in process (no kernel): membership by rules and
pins, collisions, writes and removals, outside changes, SQL tables as members."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import in_process, run_markfs
from inprocess import ROOT, InProcess, errno, errno_of, names, read_all, resolve
from remote_helpers import s3_source
from servers import S3Server

from markfs.errors import FsError
from markfs.namespace.curation import definitions
from markfs.namespace.files.sources import SourceSet, add_source
from markfs.namespace.ops import Namespace


@pytest.fixture
def two_sources(data_dir: Path, tmp_path: Path) -> Path:
    """`lake` (a folder tree) and `reports` (flat), as local sources."""
    lake, reports = tmp_path / "lake", tmp_path / "reports"
    for path, data in {"finance/2024/q1/a.csv": b"lake a", "finance/2024/q2/b.csv": b"lake b",
                       "finance/2023/old.csv": b"old", "finance/2024/readme.txt": b"r",
                       "other.txt": b"o"}.items():
        (lake / path).parent.mkdir(parents=True, exist_ok=True)
        (lake / path).write_bytes(data)
    reports.mkdir()
    for name in ("finance_q1.csv", "finance_q2.csv", "summary.txt", "a.csv"):
        (reports / name).write_bytes(f"report {name}".encode())
    in_process(lambda tree: [add_source(tree, name, f"file://{tmp_path / name}", False)
                             for name in ("lake", "reports")], data_dir)
    return tmp_path


@pytest.fixture
def finance(data_dir: Path, two_sources: Path) -> Iterator[InProcess]:
    in_process(lambda tree: definitions.add_view(
        tree, SourceSet(tree), "finance", ["lake:finance/2024/**", "reports:finance_*.csv"],
        landing="reports"), data_dir)
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()


def test_a_view_shows_members_of_two_sources_below_their_fixed_prefix(
        finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes]]:
        return await names(ns, "/views/finance"), await names(ns, "/views/finance/q1")
    top, q1 = finance.run(body)
    assert top == [b"finance_q1.csv", b"finance_q2.csv", b"q1", b"q2", b"readme.txt"]
    assert q1 == [b"a.csv"]


def test_a_member_is_the_source_file_itself(finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[int, int, bytes]:
        in_view = await resolve(ns, "/views/finance/q1/a.csv")
        in_source = await resolve(ns, "/sources/lake/finance/2024/q1/a.csv")
        return in_view.id, in_source.id, await read_all(ns, in_view)
    view_id, source_id, data = finance.run(body)
    assert view_id == source_id and data == b"lake a"


def test_a_write_through_a_view_reaches_the_source(finance: InProcess,
                                                   two_sources: Path) -> None:
    async def body(ns: Namespace) -> None:
        node = await resolve(ns, "/views/finance/q2/b.csv")
        fh, _direct = await ns.open(node.id, os.O_WRONLY | os.O_TRUNC)
        await ns.write(fh, 0, b"rewritten")
        await ns.release(fh)
    finance.run(body)
    assert (two_sources / "lake/finance/2024/q2/b.csv").read_bytes() == b"rewritten"


def test_two_members_with_one_name_are_both_shown_with_their_source(
        data_dir: Path, two_sources: Path) -> None:
    run_markfs(data_dir, "view", "add", "mixed", "lake:finance/2024/q1/*", "reports:*.csv")
    inprocess = InProcess(data_dir)

    async def body(ns: Namespace) -> tuple[list[bytes], bytes, bytes]:
        listed = await names(ns, "/views/mixed")
        return (listed, await read_all(ns, await resolve(ns, "/views/mixed/a~lake.csv")),
                await read_all(ns, await resolve(ns, "/views/mixed/a~reports.csv")))
    try:
        listed, from_lake, from_reports = inprocess.run(body)
    finally:
        inprocess.close()
    assert b"a.csv" not in listed and {b"a~lake.csv", b"a~reports.csv"} <= set(listed)
    assert (from_lake, from_reports) == (b"lake a", b"report a.csv")


def test_pinned_members_appear_at_the_top_and_unpin_by_rm(
        finance: InProcess, data_dir: Path, two_sources: Path) -> None:
    run_markfs(data_dir, "view", "pin", "finance", "/sources/lake/other.txt")

    async def body(ns: Namespace) -> tuple[bool, list[bytes]]:
        view = await resolve(ns, "/views/finance")
        shown = b"other.txt" in await names(ns, "/views/finance")
        await ns.unlink(view.id, b"other.txt")
        return shown, await names(ns, "/views/finance")
    shown, after = finance.run(body)
    assert shown and b"other.txt" not in after
    assert (two_sources / "lake/other.txt").read_bytes() == b"o"  # never deleted


def test_rm_of_a_member_by_rule_is_eperm_and_deletes_nothing(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> list[int]:
        q1 = await resolve(ns, "/views/finance/q1")
        view = await resolve(ns, "/views/finance")
        return [await errno_of(ns.unlink(q1.id, b"a.csv")),
                await errno_of(ns.rmdir(view.id, b"q1"))]
    assert finance.run(body) == [errno.EPERM, errno.EPERM]
    assert (two_sources / "lake/finance/2024/q1/a.csv").exists()


def test_creating_in_a_view_lands_in_its_landing_folder(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], int, int]:
        view = await resolve(ns, "/views/finance")
        fh, node = await ns.create(view.id, b"notes.txt", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, b"landed")
        await ns.release(fh)
        in_source = await resolve(ns, "/sources/reports/notes.txt")
        return await names(ns, "/views/finance"), node.id, in_source.id
    listed, created, in_source = finance.run(body)
    assert b"notes.txt" in listed and created == in_source
    assert (two_sources / "reports/notes.txt").read_bytes() == b"landed"


def test_creating_in_a_view_without_landing_or_below_its_top_is_erofs(
        data_dir: Path, two_sources: Path, finance: InProcess) -> None:
    run_markfs(data_dir, "view", "add", "plain", "lake:finance/**")

    async def body(ns: Namespace) -> list[int]:
        plain = await resolve(ns, "/views/plain")
        q1 = await resolve(ns, "/views/finance/q1")
        return [await errno_of(ns.create(plain.id, b"x", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.create(q1.id, b"x", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.mkdir(plain.id, b"d", 0o755, ROOT))]
    assert finance.run(body) == [errno.EROFS] * 3


def test_renames_inside_a_view_are_erofs_and_out_of_it_exdev(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        view = await resolve(ns, "/views/finance")
        q1 = await resolve(ns, "/views/finance/q1")
        lake = await resolve(ns, "/sources/lake")
        return [await errno_of(ns.rename(q1.id, b"a.csv", view.id, b"a.csv", 0)),
                await errno_of(ns.rename(q1.id, b"a.csv", lake.id, b"a.csv", 0)),
                await errno_of(ns.rename(lake.id, b"other.txt", view.id, b"other.txt", 0))]
    assert finance.run(body) == [errno.EROFS, errno.EXDEV, errno.EXDEV]


def test_membership_follows_files_made_and_deleted_in_the_source(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes]]:
        before = await names(ns, "/views/finance")
        (two_sources / "reports/finance_q3.csv").write_bytes(b"q3")
        (two_sources / "reports/finance_q1.csv").unlink()
        reports = await resolve(ns, "/sources/reports")
        # what dir_ttl or the watcher does:
        await ns.source_files.listings.ensure_listed(reports, force=True)
        return before, await names(ns, "/views/finance")
    before, after = finance.run(body)
    assert b"finance_q1.csv" in before and b"finance_q3.csv" not in before
    assert b"finance_q3.csv" in after and b"finance_q1.csv" not in after


def test_view_folders_keep_their_inodes_across_namespaces(
        finance: InProcess, data_dir: Path) -> None:
    async def body(ns: Namespace) -> tuple[int, int]:
        return (await resolve(ns, "/views/finance/q1")).id, (
            await resolve(ns, "/views/finance/q1/a.csv")).id
    first = finance.run(body)
    finance.close()
    again = InProcess(data_dir)
    try:
        assert again.run(body) == first
    finally:
        again.close()


def test_a_rule_over_an_sql_source_gathers_managed_tables(
        data_dir: Path, two_sources: Path) -> None:
    db = two_sources / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "manage", "shop/main/orders", "shop/main/customers")
    run_markfs(data_dir, "view", "add", "tables", "shop:ord*")
    inprocess = InProcess(data_dir)

    async def body(ns: Namespace) -> tuple[list[bytes], int, int]:
        return (await names(ns, "/views/tables"),
                (await resolve(ns, "/views/tables/orders")).id,
                (await resolve(ns, "/tables/shop/main/orders")).id)
    try:
        listed, in_view, in_tables = inprocess.run(body)
    finally:
        inprocess.close()
    assert listed == [b"orders"] and in_view == in_tables


# -- tags and categories --------------------------------------------------------------------

def test_tags_set_as_an_xattr_gather_files_under_tags(finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], bytes, list[bytes]]:
        a = await resolve(ns, "/sources/lake/finance/2024/q1/a.csv")
        r = await resolve(ns, "/sources/reports/a.csv")
        ns.setxattr(a.id, b"user.markfs.tags", b"finance,q4")
        ns.setxattr(r.id, b"user.markfs.tags", b"q4")
        return (await names(ns, "/tags"), ns.getxattr(a.id, b"user.markfs.tags"),
                await names(ns, "/tags/q4"))
    tags, value, q4 = finance.run(body)
    assert tags == [b"finance", b"q4"] and value == b"finance,q4"
    assert q4 == [b"a~lake.csv", b"a~reports.csv"]


def test_a_tag_follows_its_file_across_a_rename(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[bytes]:
        lake = await resolve(ns, "/sources/lake")
        node = await resolve(ns, "/sources/lake/other.txt")
        ns.setxattr(node.id, b"user.markfs.tags", b"keep")
        await ns.rename(lake.id, b"other.txt", lake.id, b"moved.txt", 0)
        return await names(ns, "/tags/keep")
    assert finance.run(body) == [b"moved.txt"]


def test_removing_the_last_tag_removes_its_folder(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[bytes]:
        node = await resolve(ns, "/sources/lake/other.txt")
        ns.setxattr(node.id, b"user.markfs.tags", b"gone")
        ns.removexattr(node.id, b"user.markfs.tags")
        return await names(ns, "/tags")
    assert finance.run(body) == []


def test_categories_show_sub_categories_and_assigned_files(
        data_dir: Path, finance: InProcess) -> None:
    run_markfs(data_dir, "category", "add", "finance/2024/audit")
    run_markfs(data_dir, "category", "assign", "finance/2024", "/sources/reports/summary.txt")

    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes], bytes]:
        return (await names(ns, "/categories/finance"), await names(ns, "/categories/finance/2024"),
                await read_all(ns, await resolve(ns, "/categories/finance/2024/summary.txt")))
    top, year, data = finance.run(body)
    assert top == [b"2024"] and year == [b"audit", b"summary.txt"]
    assert data == b"report summary.txt"


def test_rm_in_a_category_unassigns_and_keeps_the_file(
        data_dir: Path, finance: InProcess, two_sources: Path) -> None:
    run_markfs(data_dir, "category", "add", "misc")
    run_markfs(data_dir, "category", "assign", "misc", "/sources/lake/other.txt")

    async def body(ns: Namespace) -> list[bytes]:
        misc = await resolve(ns, "/categories/misc")
        await ns.unlink(misc.id, b"other.txt")
        return await names(ns, "/categories/misc")
    assert finance.run(body) == []
    assert (two_sources / "lake/other.txt").exists()


def test_bad_tags_through_the_xattr_are_einval(finance: InProcess) -> None:
    async def body(ns: Namespace) -> int:
        node = await resolve(ns, "/sources/lake/other.txt")
        try:
            ns.setxattr(node.id, b"user.markfs.tags", b"a/b")
        except FsError as exc:
            return exc.code
        return 0
    assert finance.run(body) == errno.EINVAL


# -- fsck --------------------------------------------------------------------------------------

def test_fsck_finds_a_view_without_its_folder_and_repair_makes_it_again(
        data_dir: Path, finance: InProcess) -> None:
    from markfs.catalog import nodes
    from markfs.namespace.curation.definitions import require_view

    tree = finance.tree
    with tree.transaction() as txn:
        nodes.delete_subtree(txn, require_view(tree, "finance").node_id)
    finance.close()
    found = run_markfs(data_dir, "fsck", check=False)
    assert found.returncode == 1 and "view 'finance': folder" in found.stdout + found.stderr
    run_markfs(data_dir, "fsck", "--repair")
    assert run_markfs(data_dir, "fsck").returncode == 0
    again = InProcess(data_dir)

    async def body(ns: Namespace) -> list[bytes]:
        return await names(ns, "/views/finance/q1")
    try:
        assert again.run(body) == [b"a.csv"]
    finally:
        again.close()


# -- the CLI beside a running daemon ---------------------------------------------------------

def test_naming_a_path_from_the_cli_never_drops_a_file_being_written(
        s3: S3Server, data_dir: Path) -> None:
    from markfs.namespace.files.sources import SourceSet

    source = s3_source(s3, "cli-beside-daemon")
    source.put("other.txt", b"o")
    run_markfs(data_dir, "source", "add", "r", source.url)
    daemon = InProcess(data_dir)

    async def body(ns: Namespace) -> None:
        parent = await resolve(ns, "/sources/r")
        fh, _node = await ns.create(parent.id, b"new.txt", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, b"written while the CLI lists")
        # what `markfs tag add q /sources/r/other.txt` does in its own process
        definitions.tag_paths(daemon.tree, SourceSet(daemon.tree), "q", ["/sources/r/other.txt"],
                           on=True)
        await ns.fsync(fh, False)
        await ns.release(fh)
    try:
        daemon.run(body)
    finally:
        daemon.close()
    assert source.get("new.txt") == b"written while the CLI lists"


def test_a_refreshed_table_in_a_view_is_its_new_snapshot(
        data_dir: Path, two_sources: Path) -> None:
    db = two_sources / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO orders VALUES (?)", [(i,) for i in range(3)])
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "manage", "shop/main/orders")
    run_markfs(data_dir, "view", "add", "sales", "shop:orders")
    inprocess = InProcess(data_dir)

    async def rows(ns: Namespace) -> int:
        csv = await resolve(ns, "/views/sales/orders/data.csv")
        return len((await read_all(ns, csv)).splitlines()) - 1
    try:
        before = inprocess.run(rows)
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO orders VALUES (99)")
        run_markfs(data_dir, "refresh", "shop/main/orders")
        after = inprocess.run(rows)
    finally:
        inprocess.close()
    assert (before, after) == (3, 4)


def test_fsck_removes_a_view_folder_that_belongs_to_no_view(finance: InProcess,
                                                            data_dir: Path) -> None:
    import stat

    from markfs.catalog import nodes
    from markfs.model import Kind

    tree = finance.tree
    with tree.transaction() as txn:
        nodes.insert_node(txn, 4, b"stray", nodes.NewNode(
            Kind.VIEW, stat.S_IFDIR | 0o755, 0, 0, 0, 1, 1, remote_path=b""),
            generation=tree.generation)
    finance.close()
    found = run_markfs(data_dir, "fsck", check=False)
    assert found.returncode == 1 and "b'stray'" in found.stdout + found.stderr
    run_markfs(data_dir, "fsck", "--repair")
    assert run_markfs(data_dir, "fsck").returncode == 0


def test_a_glob_of_many_spans_costs_a_match_per_path_part_and_glob_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20 `**` against a path 150 folders deep (issue 24, part 7): the matcher steps
    through the path once, with every glob position at once — the recursive one tried
    every way to split the path among the spans (hours at this depth)."""
    from markfs.namespace.curation import membership

    calls = [0]
    real = membership.fnmatchcase

    def counted(name: bytes, pattern: bytes) -> bool:
        calls[0] += 1
        return real(name, pattern)

    monkeypatch.setattr(membership, "fnmatchcase", counted)
    pattern = membership.Pattern.parse("/".join(["**"] * 20) + "/x*")
    deep = tuple([b"d"] * 150)
    assert not pattern.matches(deep) and pattern.matches((*deep, b"x.csv"))
    assert pattern.may_hold(deep)
    assert calls[0] <= 3 * (151 * 2)  # three calls, each at most (parts + 1) x 2 matches
    exact = membership.Pattern.parse("a/*/b/**/c?")
    for path, wanted in (("a/x/b/c1", True), ("a/x/b/y/z/c2", True), ("a/b/c1", False),
                         ("a/x/y/b/c1", False), ("a/x/b/c12", False)):
        assert exact.matches(tuple(path.encode().split(b"/"))[1:]) == wanted, path


def test_a_view_of_many_spans_over_a_deep_tree_is_listed_to_its_bottom(
        data_dir: Path, backing: Path, tmp_path: Path) -> None:
    """Through the kernel: every folder of the view down to depth 150 (before: the
    daemon spent minutes of CPU in the first folders, every request waiting)."""
    from conftest import Mount

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
