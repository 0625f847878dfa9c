"""The read pool of a catalog on PostgreSQL (`catalog/engines/pgreaders.py`): reads made
inside `Catalog.reading()` go to connections apart from the writer's, so they never wait
for a write under way — of this host, or another host's holding the stamp row's lock."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import answered_while_held, folder, local_source_tree, make

from markfs.catalog import nodes as q
from markfs.model import Kind
from markfs.namespace.tree import ROOT_ID, SOURCES_ID, Tree

ON_POSTGRESQL = pytest.mark.parametrize("catalog_engine", ["postgresql"], indirect=True)


@pytest.fixture
def tree(data_dir: Path, tmp_path: Path) -> Iterator[Tree]:
    yield from local_source_tree(data_dir, tmp_path)


def new_file(tree: Tree, name: bytes) -> int:
    top = tree.child(SOURCES_ID, b"loc")
    assert top is not None
    now = time.time_ns()
    with tree.transaction() as txn:
        return q.insert_node(txn, top.id, name, q.NewNode(
            Kind.SOURCE, stat.S_IFREG | 0o644, 0, 0, 0, now, now, source_id=top.source_id,
            remote_path=name), generation=tree.generation)


def names_in_top(tree: Tree) -> set[bytes]:
    top = tree.child(SOURCES_ID, b"loc")
    assert top is not None
    return set(tree.child_map(top.id))


@ON_POSTGRESQL
def test_a_read_does_not_wait_for_a_write_under_way_and_sees_what_was_committed(
        tree: Tree) -> None:
    """Before: every statement of the catalog took the writer's connection, so a read
    waited for the COMMIT of whatever transaction another thread had open."""
    new_file(tree, b"committed")
    seen: list[set[bytes]] = []

    def writer(inside: threading.Event, release: threading.Event) -> None:
        with tree.transaction():
            new_file(tree, b"under-way")
            inside.set()
            release.wait(30)

    def reader() -> None:
        with tree.catalog.reading():
            seen.append(names_in_top(tree))

    answered = answered_while_held(writer, reader)
    assert answered, "the read waited for the write"
    assert seen == [{b"committed"}]  # (not the other thread's open transaction)
    assert names_in_top(tree) == {b"committed", b"under-way"}


@ON_POSTGRESQL
def test_a_transaction_opened_while_reading_reads_what_it_wrote(tree: Tree) -> None:
    with tree.catalog.reading():
        with tree.transaction():
            new_file(tree, b"mine")
            assert b"mine" in names_in_top(tree)  # (its own connection: its own write)
        assert b"mine" in names_in_top(tree)  # (the pool's: committed)


@ON_POSTGRESQL
def test_a_read_after_the_server_cut_the_pools_connections_is_answered(
        tree: Tree, data_dir: Path) -> None:
    """The server ends the read pool's connections (a restart): the next read is sent again
    on a new connection. Before: it failed with EIO (only the read after it reconnected:
    `test_two_hosts`'s restarted-server test failed one run in four)."""
    import psycopg

    new_file(tree, b"kept")
    with tree.catalog.reading():
        assert names_in_top(tree) == {b"kept"}  # (the pool's connection made and used)
    admin = psycopg.connect((data_dir / "catalog.url").read_text().strip(), autocommit=True)
    try:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'markfs read'")
        while admin.execute("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'markfs read'").fetchone()[0]:
            time.sleep(0.01)
    finally:
        admin.close()
    with tree.catalog.reading():
        assert names_in_top(tree) == {b"kept"}


@ON_POSTGRESQL
def test_a_write_after_the_server_cut_the_writers_connections_is_answered(
        tree: Tree, data_dir: Path) -> None:
    """The server ends every connection of the catalog's writers (a restart: its answer
    to the next statement is the end): a transaction's BEGIN is sent again on a new one,
    on the writer pool (a folder held) and on the catalog's own (the whole catalog)."""
    import psycopg

    make(tree, ROOT_ID, b"before")  # (a connection of the writer pool made and used)
    admin = psycopg.connect((data_dir / "catalog.url").read_text().strip(), autocommit=True)
    try:
        ours = "application_name IN ('markfs', 'markfs write')"
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {ours}")
        while admin.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {ours}"
                            ).fetchone()[0]:
            time.sleep(0.01)
    finally:
        admin.close()
    make(tree, ROOT_ID, b"after")
    folder(tree, b"whole")
    assert {b"before", b"after", b"whole"} <= {
        name for _c, name, _n in tree.catalog.nodes.list_children(ROOT_ID, 0, 1000)}
