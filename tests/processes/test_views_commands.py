"""Views, tags and categories where the command line or a database takes part:
collisions and pins set by `markfs view`, categories, SQL tables as members, fsck of
their folders, paths named from the CLI — the namespace driven in process."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from conftest import run_markfs
from harness import ROOT, InProcess, errno, errno_of, names, read_all, resolve
from remote_helpers import s3_source
from servers import S3Server

from markfs.namespace.curation import definitions
from markfs.namespace.files.sources import SourceSet
from markfs.namespace.ops import Namespace


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
