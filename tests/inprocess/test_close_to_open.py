"""Close-to-open across hosts: an open on B after A's close sees that close, however far
B's change feed is behind (its mirror is revalidated at open, one read).

Two data directories on one PostgreSQL catalog, no feed running: B's mirror hears of
A's commits only when asked. Before: B's open used the row its mirror had — the file's
old size and content identity — until the feed came (`test_two_hosts`'s restarted-server
test read b'' one run in four)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import second_host

from markfs.catalog import nodes
from markfs.catalog.engines.pgfeed import ChangeListener
from markfs.config import DataDir
from markfs.model import Kind
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
