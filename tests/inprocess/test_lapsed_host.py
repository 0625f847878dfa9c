"""A host of a shared catalog that lapsed: what it left on a source, what it may still send.

Its uploads in pieces (S3 multipart) are aborted by the other hosts once its session is
removed (lapsed past its grace); while its own session may have lapsed (fenced), its
uploader sends nothing — another host may have written the file since; a host that
stopped inside a write transaction lets the lock every writer takes go in bounded time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from harness import ROOT, InProcess, add_memory_source, answered_while_held, resolve

from markfs.backends.memory import MemoryBackend
from markfs.catalog import sessions
from markfs.catalog.db import Catalog
from markfs.config import DataDir
from markfs.namespace.ops import Namespace
from markfs.namespace.remote.pieces import PieceLedger
from markfs.namespace.tree import ROOT_ID, Tree
from markfs.namespace.workers import WorkerPool
from markfs.runtime import owner_token

ON_POSTGRESQL = pytest.mark.parametrize("catalog_engine", ["postgresql"], indirect=True)
ELSEWHERE = "4242:77@another-host"  # a daemon of another host (its owner token)


@ON_POSTGRESQL
def test_a_removed_sessions_uploads_in_pieces_are_aborted_by_the_others(data_dir: Path) -> None:
    store = add_memory_source(data_dir, "m")
    tree = Tree.open(DataDir(data_dir))
    try:
        source = tree.child(2, b"m")
        assert source is not None and source.source_id is not None
        token = store.begin_pieces(b"big")
        with tree.transaction() as txn:
            tree.catalog.piece_uploads.begun(txn, source.source_id, b"big", token, ELSEWHERE)
        engine = tree.catalog.engine
        session = sessions.register(tree.catalog.conn, engine.clock, "another-host", "h2",
                                    4242, ELSEWHERE, "/mnt", 10)

        def sweep() -> int:
            ledger = PieceLedger(tree, owner_token(), WorkerPool(2, 5.0).run, lambda _id: store)
            return trio.run(ledger.sweep)

        assert sweep() == 0 and token in store.unfinished  # its host may still send
        sessions.end(tree.catalog.conn, session)  # (as `clean` removes a lapsed one)
        assert sweep() == 1
        assert store.unfinished == {} and tree.unfinished_piece_uploads() == []
    finally:
        tree.close()


@ON_POSTGRESQL
def test_a_fenced_host_sends_nothing_until_its_session_holds_again(data_dir: Path) -> None:
    store = add_memory_source(data_dir, "m")
    ip = InProcess(data_dir, stores={"m": store}, upload_delay=3600.0)
    fenced = [False]
    ip.tree.catalog.fenced = lambda: fenced[0]

    async def body(ns: Namespace) -> None:
        folder = await resolve(ns, "/sources/m")
        fh, _node = await ns.create(folder.id, b"f", 0o644, os.O_WRONLY | os.O_CREAT, ROOT)
        await ns.write(fh, 0, b"written before the pause")
        await ns.release(fh)
        uploader = ns.remote.uploader
        [row] = uploader.rows.pending(uploader.owner)
        fenced[0] = True
        assert not await uploader._upload_one(row)
        assert not _has(store, b"f")
        fenced[0] = False
        assert await uploader._upload_one(row)
        assert store.get(b"f") == b"written before the pause"

    try:
        ip.run(body)
    finally:
        ip.close()


def _has(store: MemoryBackend, path: bytes) -> bool:
    return path in store.files


@ON_POSTGRESQL
def test_a_host_stopped_inside_a_write_lets_the_others_write_in_bounded_time(
        data_dir: Path) -> None:
    """Host A stops (a SIGSTOP, a frozen VM) inside a write transaction: it holds the
    stamp row's lock that every host's writes queue on, and its connection stays up.
    The server ends A's transaction once it has been idle for A's bound (the session's
    TTL in a daemon; 1 s here), so host B writes; A's stopped write fails and A writes
    again afterwards. Before: B's writes waited for as long as A stayed stopped."""
    import threading

    import psycopg

    from markfs.catalog.engines.postgres import PostgresEngine

    a = Tree.open(DataDir(data_dir))
    b = Catalog(DataDir(data_dir).catalog_location)  # (host B: another connection)
    try:
        assert isinstance(a.catalog.engine, PostgresEngine)
        a.catalog.engine.hold_locks_at_most(1.0)
        outcome: list[BaseException] = []

        def host_a(stopped: threading.Event, resume: threading.Event) -> None:
            try:
                with a.transaction():
                    new_folder(a, b"from-a")
                    stopped.set()
                    resume.wait(30)
            except BaseException as exc:  # (what A's stopped write came to)
                outcome.append(exc)

        done = answered_while_held(host_a, lambda: new_folder(b, b"from-b"), within=20)
        assert done, "host B's write waited for the stopped host"
        assert len(outcome) == 1 and isinstance(outcome[0], (psycopg.Error, OSError))
        new_folder(a, b"a-again")
        assert b.nodes.find_child(ROOT_ID, b"from-a") is None
        assert all(b.nodes.find_child(ROOT_ID, n) for n in (b"from-b", b"a-again"))
    finally:
        a.close()
        b.close()


def new_folder(where: Tree | Catalog, name: bytes) -> None:
    import stat
    import time

    from markfs.catalog import nodes
    from markfs.model import Kind

    now = time.time_ns()
    with where.transaction() as txn:
        nodes.insert_node(txn, ROOT_ID, name, nodes.NewNode(
            Kind.LAYOUT, stat.S_IFDIR | 0o755, 0, 0, 0, now, now, nlink=2),
            generation=where.generation)
