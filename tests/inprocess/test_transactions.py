"""Write transactions on both engines: what they send, what they skip, what the mirror gets.

On a shared catalog a transaction reads the tree as it was at BEGIN from the mirror
(caught up under the stamp row's lock) and holds writes with nothing to wait for until
its next statement or COMMIT; on SQLite every statement runs at once. Either way the
mirror must end as the catalog read whole (fsck compares the two).
"""

from __future__ import annotations

import errno
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from harness import local_source_tree

from markfs.admin.fsck import fsck
from markfs.catalog import nodes as q
from markfs.errors import FsError
from markfs.model import Kind
from markfs.namespace.tree import SOURCES_ID, Tree

pytestmark = pytest.mark.both_engines


@pytest.fixture
def tree(data_dir: Path, tmp_path: Path) -> Iterator[Tree]:
    yield from local_source_tree(data_dir, tmp_path)


@pytest.fixture
def top(tree: Tree) -> int:
    """The source's folder."""
    node = tree.child(SOURCES_ID, b"loc")
    assert node is not None
    return node.id


def new_node(tree: Tree, parent: int, name: bytes, mode: int = stat.S_IFREG | 0o644,
             holding: tuple[int, ...] = ()) -> int:
    """(`holding`: the folders its transaction holds; none: the whole catalog.)"""
    now, folder = time.time_ns(), tree.node(parent)
    assert folder is not None and folder.remote_path is not None
    with tree.transaction(holding) as txn:
        return q.insert_node(txn, parent, name, q.NewNode(
            Kind.SOURCE, mode, 0, 0, 0, now, now, source_id=folder.source_id,
            remote_path=b"/".join(p for p in (folder.remote_path, name) if p)),
            generation=tree.generation)


def test_a_transaction_that_wrote_nothing_commits_nothing(tree: Tree, top: int) -> None:
    stamp = tree.catalog.stamp
    with tree.transaction():
        assert tree.catalog.child_now(top, b"nothing") is None
    assert tree.catalog.stamp == stamp == tree.hot.stamp()
    new_node(tree, top, b"then-one")  # (the lock was let go: the next one writes)
    assert tree.catalog.stamp == stamp + 1 == tree.hot.stamp()


def test_a_held_write_is_seen_by_the_next_statement_of_its_transaction(tree: Tree,
                                                                    top: int) -> None:
    node_id = new_node(tree, top, b"f")
    with tree.transaction() as txn:
        q.update_node(txn, node_id, size=42, mtime_ns=7)
        seen = tree.catalog.nodes.get_node(node_id)
        assert seen is not None and (seen.size, seen.mtime_ns) == (42, 7)
    after = tree.node(node_id)
    assert after is not None and (after.size, after.mtime_ns) == (42, 7)
    assert fsck(tree, repair=False).clean


def test_every_kind_of_name_change_leaves_the_mirror_as_the_catalog(tree: Tree,
                                                                  top: int) -> None:
    """Renames of files and folders (paths below follow), removals with and without a
    surviving hard link, updates of rows the transaction knew and did not."""
    folder = new_node(tree, top, b"d", stat.S_IFDIR | 0o755)
    inner = new_node(tree, folder, b"inner")
    linked = new_node(tree, top, b"linked")
    plain = new_node(tree, top, b"plain")
    with tree.transaction() as txn:
        q.add_hardlink(txn, linked, folder, b"link", b"d/link")
        q.update_node(txn, linked, nlink=2)
    with tree.transaction() as txn:
        q.move_name(txn, top, b"d", top, b"e", b"e")
    moved_inner = tree.node(inner)
    assert moved_inner is not None and moved_inner.remote_path == b"e/inner"
    with tree.transaction() as txn:
        q.move_name(txn, top, b"plain", folder, b"p2", b"e/p2")
        q.update_node(txn, plain, size=5)  # (known: the transaction moved it)
    assert fsck(tree, repair=False).clean
    with tree.transaction() as txn:
        assert q.remove_name(txn, top, b"linked") is None  # the hard link survives
    survivor = tree.node(linked)
    assert survivor is not None and (survivor.parent, survivor.name) == (folder, b"link")
    with tree.transaction() as txn:
        assert q.remove_name(txn, folder, b"link") == linked
        assert q.remove_name(txn, folder, b"p2") == plain  # (after a write: by statements)
    assert tree.node(linked) is None and tree.child(folder, b"p2") is None
    with tree.transaction() as txn:
        assert q.remove_name(txn, top, b"e") == folder
    assert tree.node(inner) is None and tree.child(top, b"e") is None
    assert fsck(tree, repair=False).clean


def test_what_other_hosts_did_waits_while_this_host_writes_the_mirror(
        tree: Tree, top: int) -> None:
    """A commit of this host landing in the mirror, or a catch-up, in another thread
    (the catalog's workers): the feed's read, perhaps older than what that thread
    applies, is not applied meanwhile (None: read again), and is applied once it is
    over. (A transaction under way does not stop it: what another host committed
    meanwhile is elsewhere than what the transaction holds, and what it committed
    before is at or below the stamp the transaction caught up to, so not applied.)"""

    from markfs.model import ChangeSet

    inside, finish = threading.Event(), threading.Event()

    def writer() -> None:
        with tree.catalog.mirror_lock:
            inside.set()
            finish.wait(30)

    later = tree.catalog.stamp + 5
    worker = threading.Thread(target=writer)
    worker.start()
    inside.wait(30)
    try:
        assert tree.heard(later, ChangeSet()) is None
    finally:
        finish.set()
        worker.join()
    assert tree.heard(later, ChangeSet()) is True


def test_a_write_refused_at_commit_fails_alone_and_the_catalog_writes_on(tree: Tree,
                                                                        top: int) -> None:
    """A held write the server refuses only at COMMIT (a name taken twice): the writer
    gets EEXIST (SQLite, which runs it at once: its constraint error), the mirror is
    rebuilt from the catalog, and the next transaction commits. Before: the failed
    COMMIT left the server's transaction aborted, and every later statement of the
    connection failed ("current transaction is aborted")."""
    a, b = new_node(tree, top, b"a"), new_node(tree, top, b"b")
    before = tree.node(b)
    assert before is not None
    with pytest.raises((FsError, apsw.ConstraintError)) as refused, tree.transaction() as txn:
        txn.later("UPDATE nodes SET name = ? WHERE id = ?", (b"a", b))
        txn.known(before.with_(name=b"a"))  # (known: nothing read back before COMMIT)
    if isinstance(refused.value, FsError):
        assert refused.value.code == errno.EEXIST
    new_node(tree, top, b"c")
    found = {name: tree.child(top, name) for name in (b"a", b"b", b"c")}
    assert {name: n.id if n else None for name, n in found.items()}[b"a"] == a
    assert found[b"b"] is not None and found[b"b"].id == b and found[b"c"] is not None
    assert fsck(tree, repair=False).clean


@pytest.mark.parametrize("holding_the_folder", [False, True])
def test_a_new_name_known_free_is_inserted_with_the_commit(
        tree: Tree, top: int, holding_the_folder: bool) -> None:
    """On a shared catalog a create whose name the tree as at BEGIN lacks takes its id
    ahead (a block of ids a round trip) and sends its INSERT with the COMMIT: two round
    trips (BEGIN with the stamp, or with the folder's lock; the writes with COMMIT, and
    the stamp), not three; a name taken is still EEXIST from the INSERT itself, at once.
    On SQLite: no statement saved."""
    holding = (top,) if holding_the_folder else ()
    new_node(tree, top, b"first", holding=holding)  # (the block of ids taken)
    shared = tree.catalog.engine.shared
    sent: list[object] = []  # (what this thread sends, on any connection of the catalog)
    if shared:
        import psycopg
        real, here = psycopg.Connection.execute, threading.get_ident()

        def counted(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == here:
                sent.append(query)
            return real(conn, query, *args, **kwargs)
        psycopg.Connection.execute = counted  # type: ignore[method-assign]
    try:
        made = new_node(tree, top, b"second", holding=holding)
    finally:
        if shared:
            psycopg.Connection.execute = real  # type: ignore[method-assign]
    assert len(sent) == (2 if shared else 0), sent
    with pytest.raises((FsError, apsw.ConstraintError)):
        new_node(tree, top, b"second", holding=holding)
    found = tree.child(top, b"second")
    assert found is not None and found.id == made and fsck(tree, repair=False).clean
