"""The catalog and its LMDB mirror: write-through, crash states, fsck."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest
from old_catalogs import catalog_of_schema

from markfs.admin.fsck import fsck
from markfs.catalog import nodes as q
from markfs.config import DataDir
from markfs.model import ChangeSet, Kind
from markfs.namespace.tree import Tree


@pytest.fixture
def tree(data_dir: Path) -> Tree:
    return Tree.open(DataDir(data_dir))


def new_file(tree: Tree, parent: int, name: bytes) -> int:
    now = time.time_ns()
    with tree.transaction() as txn:
        return q.insert_node(txn, parent, name,
                             q.NewNode(Kind.LAYOUT, stat.S_IFREG | 0o644, 0, 0, 0, now, now),
                             generation=tree.generation)


def test_every_write_reaches_the_mirror(tree: Tree) -> None:
    node_id = new_file(tree, 4, b"f")
    assert tree.child(4, b"f") is not None and tree.child(4, b"f").id == node_id  # type: ignore[union-attr]
    assert tree.hot.stamp() == tree.catalog.stamp
    assert fsck(tree, repair=False).clean


def test_a_failed_transaction_changes_neither_store(tree: Tree) -> None:
    stamp = tree.catalog.stamp
    with pytest.raises(RuntimeError), tree.transaction() as txn:
        q.insert_node(txn, 4, b"f", q.NewNode(Kind.LAYOUT, stat.S_IFREG, 0, 0, 0, 0, 0),
                      generation=1)
        raise RuntimeError("boom")
    assert tree.child(4, b"f") is None and tree.catalog.nodes.find_child(4, b"f") is None
    assert tree.catalog.stamp == stamp == tree.hot.stamp()


def test_a_transaction_opened_inside_another_joins_it(tree: Tree) -> None:
    """One commit (one stamp) for both; an error in the inner one undoes the outer's
    writes too; a transaction of another thread does not join: it waits until this
    one has ended (the connection serves one thread's transaction at a time)."""
    stamp = tree.catalog.stamp
    with tree.transaction():
        first = new_file(tree, 4, b"a")
        second = new_file(tree, 4, b"b")
    assert tree.catalog.stamp == stamp + 1 == tree.hot.stamp()
    assert {tree.child(4, b"a").id, tree.child(4, b"b").id} == {first, second}  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), tree.transaction():
        new_file(tree, 4, b"c")
        with tree.transaction():
            raise RuntimeError("boom")
    assert tree.child(4, b"c") is None and tree.catalog.nodes.find_child(4, b"c") is None
    assert tree.catalog.stamp == stamp + 1 == tree.hot.stamp()
    with tree.transaction():  # (the outer one is over: a fresh transaction again)
        new_file(tree, 4, b"d")
    assert tree.catalog.stamp == stamp + 2
    errors: list[BaseException] = []

    def from_a_thread() -> None:
        try:
            new_file(tree, 4, b"f")
        except BaseException as exc:
            errors.append(exc)

    with tree.transaction():
        new_file(tree, 4, b"e")
        worker = threading.Thread(target=from_a_thread)
        worker.start()
    worker.join()  # (it waited for the outer one to end: the connection is one thread's)
    assert errors == []
    assert tree.child(4, b"e") is not None and tree.child(4, b"f") is not None
    assert tree.catalog.stamp == stamp + 4 == tree.hot.stamp()


def test_ids_are_never_reused_after_delete(tree: Tree) -> None:
    first = new_file(tree, 4, b"f")
    with tree.transaction() as txn:
        q.delete_subtree(txn, first)
    assert new_file(tree, 4, b"f") > first


def test_crash_after_mirror_write_before_commit_is_rebuilt_at_open(data_dir: Path) -> None:
    tree = Tree.open(DataDir(data_dir))
    ghost = tree.node(4).with_(id=999, name=b"ghost", parent=4)  # type: ignore[union-attr]
    # The mirror committed a transaction whose SQLite COMMIT never happened.
    tree.hot.apply(ChangeSet(nodes=[ghost], dentries=[(4, b"ghost", 999)]),
                   tree.catalog.stamp + 1)
    tree.close()
    reopened = Tree.open(DataDir(data_dir))
    assert reopened.child(4, b"ghost") is None
    assert reopened.mirror_in_sync()
    assert fsck(reopened, repair=False).clean


def test_fsck_finds_and_repairs_a_mirror_that_drifted(tree: Tree) -> None:
    node_id = new_file(tree, 4, b"f")
    wrong = tree.node(node_id).with_(size=12345)  # type: ignore[union-attr]
    tree.hot.apply(ChangeSet(nodes=[wrong], gone_dentries=[(4, b"f")]), tree.catalog.stamp)
    report = fsck(tree, repair=False)
    assert any("differs" in p for p in report.problems)
    assert any("b'f'" in p for p in report.problems)
    repaired = fsck(tree, repair=True)
    assert repaired.repaired and fsck(tree, repair=False).clean
    assert tree.node(node_id).size == 0  # type: ignore[union-attr]


def test_fsck_removes_orphaned_nodes(tree: Tree) -> None:
    with tree.transaction() as txn:
        q.insert_node(txn, 424242, b"lost",
                      q.NewNode(Kind.LAYOUT, stat.S_IFREG, 0, 0, 0, 0, 0), generation=1)
    assert any("parent missing" in p for p in fsck(tree, repair=False).problems)
    fsck(tree, repair=True)
    assert fsck(tree, repair=False).clean


def test_fsck_reports_an_upload_whose_staged_file_is_gone(tree: Tree, tmp_path: Path) -> None:
    from markfs.catalog import sources as sq

    with tree.transaction() as txn:
        source_id = sq.insert_source(txn, "s", f"file://{tmp_path}", "file", False)
        tree.catalog.uploads.enqueue(txn, 123, source_id, b"x", str(tmp_path / "gone"), 5, "1:1")
    problems = fsck(tree, repair=False).problems
    assert any("staged file missing" in p for p in problems)
    fsck(tree, repair=True)
    assert not any("staged file" in p for p in fsck(tree, repair=False).problems)


def test_a_catalog_of_schema_6_keeps_its_nodes_and_accepts_every_kind(tmp_path: Path) -> None:
    data_dir, conn = catalog_of_schema(6, tmp_path)
    conn.execute("INSERT INTO nodes (id, parent, name, kind, mode, uid, gid, mtime_ns, "
                 "ctime_ns, generation) VALUES (50, 1, x'6f6c64', 'layout', 16877, 0, 0, 1, 1, 7)")
    conn.close()
    tree = Tree.open(DataDir(data_dir), create=True)
    old = tree.catalog.nodes.get_node(50)
    assert old is not None and old.name == b"old" and old.generation == 7
    with tree.transaction() as txn:
        for kind in Kind:
            q.insert_node(txn, 4, kind.value.encode(),
                          q.NewNode(kind, stat.S_IFDIR | 0o755, 0, 0, 0, 1, 1),
                          generation=tree.generation)
    assert {tree.child(4, k.value.encode()).kind for k in Kind} == set(Kind)  # type: ignore[union-attr]


def test_a_multipart_upload_journaled_by_schema_8_is_still_aborted_later(
        tmp_path: Path) -> None:
    from markfs.catalog.journals import pieces

    data_dir, conn = catalog_of_schema(8, tmp_path)
    conn.execute("INSERT INTO sources (id, name, url, scheme, read_only, created_ns) "
                 "VALUES (3, 's', 's3://b', 's3', 0, 1)")
    conn.execute("INSERT INTO uploads (node_id, source_id, remote_path, staging, size, "
                 "queued_ns, owner, multipart) VALUES (9, 3, x'6b', '/x', 5, 1, '1:2', 'UP-1')")
    conn.close()
    tree = Tree.open(DataDir(data_dir), create=True)
    assert tree.catalog.piece_uploads.every_row() == [
        pieces.PieceUpload(1, 3, b"k", "UP-1", "1:2")]
    tree.close()
