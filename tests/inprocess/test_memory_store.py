"""The remote path without a kernel or a server: the chunk reader, staging, the uploader,
pieces and journaled renames over a `MemoryBackend`, with faults injected where a
server would fail — as mountpoint-s3 tests its prefetcher over its mock client. What
each operation asks of the store is counted (`MemoryBackend.calls`)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from harness import InProcess, add_memory_source, errno_of, read_all, resolve, write_new

from markfs.backends.memory import MemoryBackend
from markfs.namespace.ops import Namespace

WAIT_S = 30.0  # a bound on waits for background work, never reached when all is well


@pytest.fixture
def store(data_dir: Path) -> MemoryBackend:
    return add_memory_source(data_dir, "m", piece_size=64 * 1024)


@pytest.fixture
def inprocess(data_dir: Path, store: MemoryBackend) -> Iterator[InProcess]:
    running = InProcess(data_dir, stores={"m": store}, io_timeout=1.0, upload_delay=0.0)
    yield running
    running.close()


async def uploads_drained(ns: Namespace) -> None:
    with trio.fail_after(WAIT_S):
        while ns.remote.uploader.pending()[0]:
            await trio.sleep(0.01)


async def attempts_made(ns: Namespace, at_least: int) -> None:
    """Until the uploader has tried (and failed) the journal's rows `at_least` times."""
    with trio.fail_after(WAIT_S):
        while max((r.attempts for r in ns.tree.catalog.uploads.every_row()), default=0) \
                < at_least:
            await trio.sleep(0.01)


def test_a_file_on_the_store_is_read_once_then_served_from_the_cache(
        inprocess: InProcess, store: MemoryBackend) -> None:
    data = os.urandom(300_000)
    store.put(b"there.bin", data)

    async def body(ns: Namespace) -> tuple[bytes, bytes, int]:
        node = await resolve(ns, "/sources/m/there.bin")
        first = await read_all(ns, node)
        asked = store.calls["read_range"]
        return first, await read_all(ns, node), asked
    first, again, asked = inprocess.run(body)
    assert first == again == data
    assert asked == 1 and store.calls["read_range"] == 1  # one request; then the cache


def test_a_failed_read_shuts_the_source_until_it_answers_a_probe(
        inprocess: InProcess, store: MemoryBackend) -> None:
    store.put(b"there.bin", b"bytes on the store")

    async def body(ns: Namespace) -> tuple[int, int, int, bytes]:
        node = await resolve(ns, "/sources/m/there.bin")
        store.faults.fail("read_range", errno.EIO)
        failed = await errno_of(read_all(ns, node))
        asked = store.calls["read_range"]
        at_once = await errno_of(read_all(ns, node))  # shut: no request made
        asked_again = store.calls["read_range"] - asked
        store.faults.clear()
        with trio.fail_after(WAIT_S):  # (the probe lists the source's root)
            while ns.sources.shut(node.source_id or 0) is not None:
                await trio.sleep(0.01)
        return failed, at_once, asked_again, await read_all(ns, node)
    assert inprocess.run(body) == (errno.EIO, errno.EIO, 0, b"bytes on the store")


def test_a_store_that_does_not_answer_is_eio_after_io_timeout(
        inprocess: InProcess, store: MemoryBackend) -> None:
    store.put(b"there.bin", b"x")

    async def body(ns: Namespace) -> int:
        node = await resolve(ns, "/sources/m/there.bin")
        released = store.faults.hold("read_range")
        try:
            with trio.fail_after(WAIT_S):  # (io_timeout is 1 s: a hang fails here)
                return await errno_of(read_all(ns, node))
        finally:
            released.set()
    assert inprocess.run(body) == errno.EIO


def test_a_written_file_is_uploaded_in_one_request(
        inprocess: InProcess, store: MemoryBackend) -> None:
    data = os.urandom(10_000)

    async def body(ns: Namespace) -> None:
        await write_new(ns, "/sources/m", "new.bin", data)
        await uploads_drained(ns)
    inprocess.run(body)
    assert store.get(b"new.bin") == data
    assert (store.calls["upload"], store.calls["begin_pieces"]) == (1, 0)


def test_a_failing_upload_is_retried_and_the_file_reads_meanwhile(
        inprocess: InProcess, store: MemoryBackend) -> None:
    data = os.urandom(10_000)
    store.faults.fail("upload", errno.EIO)

    async def body(ns: Namespace) -> bytes:
        node = await write_new(ns, "/sources/m", "new.bin", data)
        await attempts_made(ns, 2)
        meanwhile = await read_all(ns, node)  # the staged copy, not the store
        store.faults.clear()
        ns.remote.uploader.retry_now()
        await uploads_drained(ns)
        return meanwhile
    assert inprocess.run(body) == data
    # (2 failed attempts, but not always 2 failed calls: a failed call shuts the source
    # until its probe answers, every 2 s, and a retry due before that fails at once)
    assert store.get(b"new.bin") == data and store.calls["upload"] >= 2


def test_retries_while_the_store_answers_no_probe_fail_without_calling_it(
        inprocess: InProcess, store: MemoryBackend) -> None:
    """A failed upload shuts the source: until its probe (a listing of its root) answers,
    a retry fails at once — one call to a dead server, not one per retry."""
    store.faults.fail("upload", errno.EIO)
    store.faults.fail("list", errno.EIO)

    async def body(ns: Namespace) -> int:
        await write_new(ns, "/sources/m", "new.bin", b"later")
        await attempts_made(ns, 2)
        calls_while_shut = store.calls["upload"]
        store.faults.clear()  # the next probe answers, and the upload goes at once
        await uploads_drained(ns)
        return calls_while_shut
    assert inprocess.run(body) == 1
    assert store.get(b"new.bin") == b"later" and store.calls["upload"] == 2


def test_an_upload_the_store_refuses_is_parked_and_its_staged_copy_kept(
        inprocess: InProcess, store: MemoryBackend) -> None:
    store.faults.fail("upload", errno.EACCES, refused=True)

    async def body(ns: Namespace) -> tuple[str | None, bool]:
        await write_new(ns, "/sources/m", "new.bin", b"kept")
        with trio.fail_after(WAIT_S):
            while not (rows := ns.tree.catalog.uploads.every_row()) or \
                    rows[0].parked_ns is None:
                await trio.sleep(0.01)
        return rows[0].last_error, os.path.exists(rows[0].staging)
    reason, staged_kept = inprocess.run(body)
    assert reason is not None and "refuses" in reason and staged_kept
    assert store.get(b"new.bin") is None and store.calls["upload"] == 1


def test_a_large_file_goes_in_pieces_and_a_failed_piece_leaves_nothing_behind(
        inprocess: InProcess, store: MemoryBackend) -> None:
    data = os.urandom(5 * 64 * 1024 + 123)  # six pieces
    store.faults.fail("send_piece", errno.EIO, times=1)

    async def body(ns: Namespace) -> None:
        # (the piece fails in the stream that sends pieces while the file is written, or
        # in the upload after its close — whichever starts first: sent again either way)
        await write_new(ns, "/sources/m", "big.bin", data)
        await uploads_drained(ns)
    inprocess.run(body)
    assert store.get(b"big.bin") == data
    assert store.unfinished == {}  # the failed try's pieces aborted
    assert store.calls["begin_pieces"] == 2 and store.calls["finish_pieces"] == 1


def test_a_rename_on_the_store_is_journaled_until_it_is_done(
        inprocess: InProcess, store: MemoryBackend) -> None:
    store.put(b"old.txt", b"moved")

    async def body(ns: Namespace) -> tuple[int, int, list[object]]:
        top = await resolve(ns, "/sources/m")
        await resolve(ns, "/sources/m/old.txt")
        store.faults.fail("rename", errno.EIO, times=1)
        failed = await errno_of(ns.rename(top.id, b"old.txt", top.id, b"new.txt", 0))
        left = ns.tree.catalog.renames.unfinished()
        worked = await errno_of(ns.rename(top.id, b"old.txt", top.id, b"new.txt", 0))
        return failed, worked, left
    failed, worked, left = inprocess.run(body)
    assert (failed, worked) == (errno.EIO, 0)
    assert len(left) == 1  # the failed copy-then-delete, for a restart to finish
    assert store.get(b"new.txt") == b"moved" and store.get(b"old.txt") is None
