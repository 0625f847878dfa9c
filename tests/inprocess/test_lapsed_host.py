"""A host of a shared catalog that lapsed: what it left on a source, what it may still send.

Its uploads in pieces (S3 multipart) are aborted by the other hosts once its session is
removed (lapsed past its grace); while its own session may have lapsed (fenced), its
uploader sends nothing — another host may have written the file since.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from harness import ROOT, InProcess, add_memory_source, resolve

from markfs.backends.memory import MemoryBackend
from markfs.catalog import sessions
from markfs.config import DataDir
from markfs.namespace.ops import Namespace
from markfs.namespace.remote.pieces import PieceLedger
from markfs.namespace.tree import Tree
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
