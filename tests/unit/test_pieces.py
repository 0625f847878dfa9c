"""`PieceSender` without the kernel: which pieces leave when, what a finish assembles,
and that a stream that broke leaves nothing behind — against a `MemoryBackend` (the
real backends' own piece methods are driven by test_streaming_uploads)."""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from markfs.backends.memory import MemoryBackend
from markfs.catalog import sources
from markfs.config import DataDir
from markfs.errors import FsError
from markfs.namespace.remote.pieces import PieceLedger, PieceSender
from markfs.namespace.tree import Tree
from markfs.namespace.workers import WorkerPool
from markfs.runtime import owner_token

PIECE = 1000


Scenario = Callable[[PieceSender, Path], Awaitable[None]]


def run_sender(tmp_path: Path, store: MemoryBackend, scenario: Scenario) -> Tree:
    """Run a scenario against a sender of staged file `tmp_path/staged`; the tree left."""
    tree = Tree.open(DataDir(tmp_path / "data"), create=True)
    with tree.transaction() as txn:
        source_id = sources.insert_source(txn, "s", "s3://b", "s3", False)
    staged = tmp_path / "staged"
    staged.write_bytes(b"")

    async def main() -> None:
        io = WorkerPool(4, 10.0).run
        ledger = PieceLedger(tree, owner_token(), io, lambda _id: store)
        async with trio.open_nursery() as nursery:
            sender = PieceSender(store, source_id, b"f", staged, io, ledger, nursery)
            await scenario(sender, staged)

    trio.run(main)
    return tree


def write(staged: Path, sender: PieceSender, offset: int, data: bytes) -> None:
    with open(staged, "r+b") as f:
        os.pwrite(f.fileno(), data, offset)
    sender.offer(offset, offset + len(data))


async def settle() -> None:
    for _ in range(50):
        await trio.sleep(0.01)


def test_whole_pieces_leave_while_the_file_is_written_and_finish_assembles_it(
        tmp_path: Path) -> None:
    store, data = MemoryBackend(piece_size=PIECE), os.urandom(2 * PIECE + 300)

    async def scenario(sender: PieceSender, staged: Path) -> None:
        write(staged, sender, 0, data[:PIECE + 10])
        write(staged, sender, PIECE + 10, data[PIECE + 10:2 * PIECE + 50])
        await settle()
        assert sorted(store.unfinished["pieces-1"].parts) == [1, 2]  # whole pieces only
        write(staged, sender, 2 * PIECE + 50, data[2 * PIECE + 50:])
        await sender.finish(len(data))

    tree = run_sender(tmp_path, store, scenario)
    assert store.get(b"f") == data
    assert tree.catalog.piece_uploads.every_row() == []


def test_a_file_smaller_than_a_piece_never_begins_an_upload(tmp_path: Path) -> None:
    store = MemoryBackend(piece_size=PIECE)

    async def scenario(sender: PieceSender, staged: Path) -> None:
        write(staged, sender, 0, b"x" * (PIECE - 1))
        await settle()
        await sender.stopped()  # (returns at once: nothing started)

    run_sender(tmp_path, store, scenario)
    assert store.calls["begin_pieces"] == 0


def test_a_write_below_what_was_sent_aborts_the_stream(tmp_path: Path) -> None:
    store = MemoryBackend(piece_size=PIECE)

    async def scenario(sender: PieceSender, staged: Path) -> None:
        write(staged, sender, 0, b"a" * (2 * PIECE))
        await settle()
        write(staged, sender, 10, b"b")
        with pytest.raises(FsError) as caught:
            await sender.finish(2 * PIECE)
        assert caught.value.code == errno.ECANCELED

    tree = run_sender(tmp_path, store, scenario)
    assert store.calls["abort_pieces"] == 1 and store.unfinished == {} and store.files == {}
    assert tree.catalog.piece_uploads.every_row() == []


def test_a_write_beyond_a_hole_waits_until_the_hole_is_filled(tmp_path: Path) -> None:
    store = MemoryBackend(piece_size=PIECE)
    data = os.urandom(2 * PIECE)

    async def scenario(sender: PieceSender, staged: Path) -> None:
        write(staged, sender, PIECE // 2, data[PIECE // 2:])
        await settle()
        assert store.calls["begin_pieces"] == 0  # [0, PIECE/2) is not written yet
        write(staged, sender, 0, data[:PIECE // 2])
        await sender.finish(len(data))

    run_sender(tmp_path, store, scenario)
    assert store.get(b"f") == data


def test_a_failed_abort_is_left_to_the_sweep(tmp_path: Path) -> None:
    store = MemoryBackend(piece_size=PIECE)

    async def scenario(sender: PieceSender, staged: Path) -> None:
        store.faults.fail("abort_pieces", errno.EIO)  # the server is down
        write(staged, sender, 0, b"a" * PIECE)
        await settle()
        sender.abandon("test")
        await sender.stopped()

    tree = run_sender(tmp_path, store, scenario)
    left = tree.catalog.piece_uploads.every_row()
    assert [row.token for row in left] == ["pieces-1"] and "pieces-1" in store.unfinished
    store.faults.clear()

    async def sweep() -> int:
        ledger = PieceLedger(tree, owner_token(), WorkerPool(2, 5.0).run, lambda _id: store)
        return await ledger.sweep()

    assert trio.run(sweep) == 1
    assert store.unfinished == {} and tree.catalog.piece_uploads.every_row() == []
