"""Writers of a shared catalog hold the folders they change, not the whole catalog.

Two hosts (two data directories, one PostgreSQL catalog): a write in one folder goes on
while another host holds a different folder mid-transaction, and waits while it holds
the same one; each host's mirror ends up as the catalog is, though the stamps of its
own commits came between the other's; what the feed read before a commit of this
host never goes over it. A deadlock the server breaks is run again by the runner.
"""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from harness import answered_while_held, folder, make, second_host

from markfs.catalog import nodes
from markfs.catalog.engines.pgfeed import ChangeListener
from markfs.catalog.engines.postgres import WRITERS_LOCK
from markfs.config import DataDir
from markfs.metrics import METRICS
from markfs.model import ChangeSet, Kind
from markfs.namespace.tree import ROOT_ID, Tree
from markfs.namespace.workers import CatalogRunner

pytestmark = pytest.mark.parametrize("catalog_engine", ["postgresql"], indirect=True)


def names_in(tree: Tree, parent: int) -> set[bytes]:
    return {name for _c, name, _n in tree.catalog.nodes.list_children(parent, 0, 1000)}


def mirrored_in(tree: Tree, parent: int, names: set[bytes]) -> set[bytes]:
    return {name for name in names if tree.hot.child(parent, name) is not None}


def test_commits_of_one_host_landing_out_of_order_bring_the_mirror_to_the_last(
        data_dir: Path) -> None:
    """Two threads' commits land in the other order (the later first: its rows only,
    the stamp kept): the earlier one's landing takes the mirror's stamp past both, and
    a transaction that then finds the catalog at a stamp the mirror passed already
    reads nothing (before: it rebuilt the whole mirror)."""
    tree = Tree.open(DataDir(data_dir))
    try:
        x = folder(tree, b"x")
        at = tree.hot.stamp() or 0
        assert at == tree.catalog.stamp
        first, second = ChangeSet(nodes=[tree.node(x)]), ChangeSet()
        tree.landed(second, at + 2)
        assert tree.hot.stamp() == at and tree.own_stamps() == {at + 2}
        tree.landed(first, at + 1)
        assert tree.hot.stamp() == at + 2 and tree.own_stamps() == frozenset()
        rebuilt = tree.hot.applied
        tree.catch_up(at + 1)
        assert tree.hot.applied == rebuilt and tree.hot.stamp() == at + 2
    finally:
        tree.close()


@pytest.mark.parametrize("other_host", [True, False], ids=["another-host", "same-host"])
def test_a_write_in_another_folder_goes_on_while_a_folder_is_held(
        data_dir: Path, tmp_path: Path, other_host: bool) -> None:
    """Before: every write transaction held the stamp row from BEGIN, so host B's create
    in its own folder waited as long as host A stayed inside its write; and a host's
    writes went one at a time on its one catalog connection, so its own create in
    folder y waited while another of its threads was inside a write in folder x (now
    each runs on a connection of the writer pool). A write in the held folder still
    waits for its row's lock; the mirrors end up as the catalog is."""
    a = Tree.open(DataDir(data_dir))
    b = second_host(data_dir, tmp_path) if other_host else a
    try:
        x, y = folder(a, b"x"), folder(a, b"y")

        def a_inside_x(inside: threading.Event, release: threading.Event) -> None:
            with a.transaction((x,)) as txn:
                txn.changed("UPDATE nodes SET mtime_ns = mtime_ns + 1 WHERE id = ?", (x,))
                inside.set()
                release.wait(30)

        assert answered_while_held(a_inside_x, lambda: make(b, y, b"beside"), within=20), \
            "a write in another folder waited for the one under way"
        assert not answered_while_held(a_inside_x, lambda: make(b, x, b"after"), within=1), \
            "a write in the folder held did not wait"
        assert names_in(a, x) == {b"after"} and names_in(a, y) == {b"beside"}
        for tree in {a, b}:
            with tree.transaction((x, y)):
                pass  # (caught up to the catalog under those folders' locks)
            assert mirrored_in(tree, x, {b"after"}) and mirrored_in(tree, y, {b"beside"})
    finally:
        a.close()
        if other_host:
            b.close()


def test_commits_of_two_hosts_between_each_other_leave_both_mirrors_as_the_catalog(
        data_dir: Path, tmp_path: Path) -> None:
    """A's stamp is taken at its COMMIT, after B's (B wrote while A held its folder):
    A's mirror takes A's rows without B's stamp, and a feed read made before A's commit
    (which does not have A's new folder) is not applied over them; a later read is, and
    leaves A's own commit out (its mirror has it; its kernel need not forget it)."""
    a = Tree.open(DataDir(data_dir))
    b = second_host(data_dir, tmp_path)
    listener = ChangeListener((data_dir / "catalog.url").read_text().strip())
    try:
        x, y = folder(a, b"x"), folder(a, b"y")
        before = a.catalog.stamp
        b_wrote = threading.Event()
        with a.transaction((x,)) as txn:
            nodes.insert_node(txn, x, b"from-a", nodes.NewNode(
                Kind.LAYOUT, stat.S_IFDIR | 0o755, 0, 0, 0, 1, 1, nlink=2),
                generation=a.generation)
            writer = threading.Thread(target=lambda: (make(b, y, b"from-b"), b_wrote.set()))
            writer.start()
            assert b_wrote.wait(20), "host B waited for host A's folder"
            early = listener.read_since(before)  # (a feed's read before A's commit)
        writer.join()
        assert a.catalog.last_committed == before + 2  # (B's came first)
        assert mirrored_in(a, x, {b"from-a"}) == {b"from-a"}
        assert a.heard(*early) is None, "a read older than A's commit went over its rows"
        assert mirrored_in(a, x, {b"from-a"}) == {b"from-a"}
        late = listener.read_since(before, a.own_stamps())
        assert late[1] is not None
        read = {node.name for node in late[1].nodes}
        # (A's own commit left out: its mirror has it, its kernel need not forget it)
        assert b"from-b" in read and b"from-a" not in read
        assert a.heard(*late) is True and a.own_stamps() == frozenset()
        for tree in (a, b):
            with tree.transaction():  # (a write transaction's catch-up; nothing written)
                pass
            assert tree.mirror_in_sync()
            assert mirrored_in(tree, x, {b"from-a"}) == {b"from-a"}
            assert mirrored_in(tree, y, {b"from-b"}) == {b"from-b"}
    finally:
        listener.close()
        a.close()
        b.close()


def test_a_write_the_server_ends_in_a_deadlock_is_run_again(data_dir: Path) -> None:
    """Another session holds folder X's row, then waits for the writers' lock and the
    stamp row while a write holding the writers' lock waits for X: the server ends the
    write (40P01, it waited first). Before: EIO; now the runner runs it again.
    (The server looks for a deadlock once, `deadlock_timeout` after a wait began: the
    write's look comes after the cycle closed — 3 s, not 1 — and the other session's
    never comes; under CI's load the cycle once closed after the write's look.)"""
    url = (data_dir / "catalog.url").read_text().strip()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {admin.info.dbname} SET deadlock_timeout = '3s'")
    tree = Tree.open(DataDir(data_dir))
    try:
        x = folder(tree, b"x")
        retried = _retries()
        other: Any = psycopg.connect(url)
        other.execute("SET deadlock_timeout = '60s'")
        other.execute("SELECT id FROM nodes WHERE id = %s FOR UPDATE", (x,))
        outcome: list[object] = []

        async def write() -> None:
            runner = CatalogRunner(tree.catalog, timeout=30.0)
            outcome.append(await runner(make, tree, x, b"made"))

        writing = threading.Thread(target=lambda: trio.run(write))
        writing.start()
        _wait_for_a_lock_wait(url)
        other.execute(f"SELECT pg_advisory_xact_lock({WRITERS_LOCK})")
        other.execute("SELECT value FROM meta WHERE key = 'stamp' FOR UPDATE")
        other.rollback()
        other.close()
        writing.join(30)
        assert outcome and isinstance(outcome[0], int), "the write was not run again"
        assert names_in(tree, x) == {b"made"}
        assert _retries() > retried
    finally:
        tree.close()


def _retries() -> float:
    value: float = METRICS.catalog_retries._value.get()  # (prometheus_client's counter)
    return value


def _wait_for_a_lock_wait(url: str) -> None:
    """Until a markfs connection waits for a lock (the write is inside its transaction)."""
    watcher: Any = psycopg.connect(url, autocommit=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name IN "
                "('markfs', 'markfs write') AND wait_event_type = 'Lock'").fetchone()
            if row[0]:
                return
            time.sleep(0.01)
        raise AssertionError("the write never waited for the folder's row")
    finally:
        watcher.close()


def test_what_another_host_changed_in_a_folder_leaves_the_folders_name_in_the_kernel(
        data_dir: Path, tmp_path: Path) -> None:
    """B creates in folder X, whose times change with it: A's kernel is told to forget
    X's attributes and the new name, not X's own name — forgetting that drops every name
    below X from the kernel's cache. Before: each create on B made A's kernel look up
    every name of X again (stats on two hosts fell from ~645,000/s to ~25,000/s)."""
    a = Tree.open(DataDir(data_dir))
    b = second_host(data_dir, tmp_path)
    try:
        x = folder(a, b"x")
        with b.transaction():  # (B's mirror takes X)
            pass
        told: list[Any] = []
        a.hear = told.append
        make(b, x, b"from-b")
        with a.transaction():  # (A's catch-up hears it)
            pass
        assert len(told) == 1 and told[0] is not None
        names = {(p, n) for p, n, _ in told[0].dentries} | set(told[0].gone_dentries)
        assert (x, b"from-b") in names and (ROOT_ID, b"x") not in names
        assert x in {node.id for node in told[0].nodes}
    finally:
        a.close()
        b.close()


def test_a_listing_holds_its_folder_and_a_vanished_folder_the_whole_catalog(
        data_dir: Path, tmp_path: Path) -> None:
    """Host B records a listing of folder Y while host A holds folder X: it goes on
    (before: a listing's reconcile waited for every other write); a listing in which a
    folder vanished (what is below it goes too) holds the whole catalog, and waits."""
    from markfs.backends.base import Entry
    from markfs.namespace.listing import reconcile

    a = Tree.open(DataDir(data_dir))
    b = second_host(data_dir, tmp_path)
    try:
        x = folder(a, b"x")
        with a.transaction() as txn:  # (a source's folder: its listing names paths)
            y = nodes.insert_node(txn, ROOT_ID, b"y", nodes.NewNode(
                Kind.SOURCE, stat.S_IFDIR | 0o755, 0, 0, 0, 1, 1, nlink=2, remote_path=b"y"),
                generation=a.generation)
        y_node = b.catalog.nodes.get_node(y)
        assert y_node is not None
        failed: list[BaseException] = []

        def listing(*names: bytes) -> None:
            try:
                reconcile(b, y_node, [Entry(name, stat.S_IFDIR | 0o755, 0, 0, 0, 1, 1)
                                      for name in names])
            except BaseException as exc:  # (a thread's: seen by the test below)
                failed.append(exc)

        def a_inside_x(inside: threading.Event, release: threading.Event) -> None:
            with a.transaction((x,)) as txn:
                txn.changed("UPDATE nodes SET mtime_ns = mtime_ns + 1 WHERE id = ?", (x,))
                inside.set()
                release.wait(30)

        assert answered_while_held(a_inside_x, lambda: listing(b"sub", b"new"), within=20), \
            "a listing of another folder waited for host A"
        assert names_in(a, y) == {b"sub", b"new"}
        assert not answered_while_held(a_inside_x, lambda: listing(b"new"), within=1), \
            "a listing that removes a folder did not hold the whole catalog"
        assert names_in(a, y) == {b"new"} and not failed
    finally:
        a.close()
        b.close()
