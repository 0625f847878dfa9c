"""Close-to-open across hosts: an open on B after A's close sees that close, however far
B's change feed is behind (its mirror is revalidated at open, one read).

Two data directories on one PostgreSQL catalog, no feed running: B's mirror hears of
A's commits only when asked. Before: B's open used the row its mirror had — the file's
old size and content identity — until the feed came (`test_two_hosts`'s restarted-server
test read b'' one run in four)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from harness import ROOT, InProcess, add_memory_source, resolve, second_host

from markfs.catalog import nodes
from markfs.catalog.engines.pgfeed import ChangeListener
from markfs.config import DataDir
from markfs.model import Kind, Node
from markfs.namespace.hosts.feed import CatalogFeed
from markfs.namespace.ops import Namespace
from markfs.namespace.tree import ROOT_ID, Tree

pytestmark = pytest.mark.parametrize("catalog_engine", ["postgresql"], indirect=True)


def test_an_open_on_one_host_sees_the_size_another_host_closed_the_file_with(
        data_dir: Path, tmp_path: Path) -> None:
    a = Tree.open(DataDir(data_dir))
    b = second_host(data_dir, tmp_path)
    listener = ChangeListener((data_dir / "catalog.url").read_text().strip())
    try:
        with a.transaction() as txn:
            made = nodes.insert_node(txn, ROOT_ID, b"report", nodes.NewNode(
                Kind.SOURCE, 0o100644, 0, 0, 0, 1, 1), generation=a.generation)
        with b.transaction():  # (B's mirror takes the new file: its size 0)
            pass
        before = b.node(made)
        assert before is not None and before.size == 0
        with a.transaction() as txn:  # (another change B's feed reads before the close)
            nodes.insert_node(txn, ROOT_ID, b"other", nodes.NewNode(
                Kind.SOURCE, 0o100644, 0, 0, 0, 1, 1), generation=a.generation)
        early = listener.read_since(b.hot.stamp() or 0)
        with a.transaction((ROOT_ID,)) as txn:  # A's close: the file's new size
            nodes.update_node(txn, made, size=9, mtime_ns=2)
        fresh = b.revalidated(before)
        assert fresh is not None and fresh.size == 9
        assert b.node(made) == fresh  # (a stat after the open: the same)
        assert b.heard(*early) is None  # (what the feed read before does not go over it)
        assert b.node(made) == fresh
        assert b.revalidated(fresh) is None  # (unchanged since: nothing to do)
    finally:
        listener.close()
        a.close()
        b.close()


async def stored(ns: Namespace, node: Node | None, name: str, data: bytes) -> Node:
    """`data` written to a new file `name` of the source `m` (node None) or over `node`,
    fsynced — stored on the source — and closed, on this host."""
    if node is None:
        folder = await resolve(ns, "/sources/m")
        fh, node = await ns.create(folder.id, name.encode(), 0o644,
                                   os.O_WRONLY | os.O_CREAT, ROOT)
    else:
        fh, _direct = await ns.open(node.id, os.O_WRONLY | os.O_TRUNC)
    await ns.write(fh, 0, data)
    await ns.fsync(fh, False)
    await ns.release(fh)
    return node


def test_an_open_of_a_remote_file_reads_what_another_host_closed_since(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the namespace (`StagedStore.open`): host B, whose feed does not run (it
    would bring the new row whenever it read), had the file at its first content; A
    overwrites it, longer, and closes it; B's open takes the new row — the kernel told
    to bypass its pages and size of the old content (`direct`: without the open's read
    of the row it was not, while the read itself found the new object by its ETag) —
    and reads the new content whole."""
    async def no_feed(feed: CatalogFeed) -> None:
        await trio.sleep_forever()
    monkeypatch.setattr(CatalogFeed, "run", no_feed)
    store = add_memory_source(data_dir, "m")
    b_dir = tmp_path / "host-b"
    second_host(data_dir, tmp_path).close()
    a = InProcess(data_dir, stores={"m": store})
    b = InProcess(b_dir, stores={"m": store})
    try:
        made = a.run(lambda ns: stored(ns, None, "report.csv", b"v1"))
        with b.tree.transaction():  # (B's mirror takes the file as it is now: v1)
            pass
        old = b.tree.node(made.id)
        assert old is not None and old.size == 2
        a.run(lambda ns: stored(ns, made, "", b"version two, longer"))
        assert b.tree.node(made.id) == old  # (B heard nothing: no feed)

        async def read_on_b(ns: Namespace) -> tuple[bytes, bool]:
            assert ns.node(old.id) == old  # (B's background tasks ran: still no feed)
            fh, direct = await ns.open(old.id, os.O_RDONLY)
            try:
                return await ns.read(fh, 0, 1000), direct
            finally:
                await ns.release(fh)
        data, direct = b.run(read_on_b)
        assert data == b"version two, longer"
        assert direct  # (the kernel's pages of the old content bypassed)
        fresh = b.tree.node(made.id)
        assert fresh is not None and fresh.size == len(b"version two, longer")
    finally:
        a.close()
        b.close()
