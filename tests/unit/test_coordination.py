"""Change marks and directory locks cost the same however much the mount has done
(issue 25, part 8): rounds of 2,500 create+unlink on a local source took 12.6 s each,
then 23, 25, 27.5, 30 s — from the 10,001st mark in 600 s on, every mark rebuilt the
whole table — and the lock table kept a lock for every folder ever changed."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from markfs.namespace.coordination import ChangeMarks, DirectoryLocks


def test_a_mark_never_rebuilds_the_table_and_old_marks_leave() -> None:
    """Marks are kept while an observation begun before them is in flight — however
    long it runs (the 600 s horizon before dropped them under a listing slower than
    that) — and leave once none is (the horizon kept 700,000 at a thousand creates a
    second: issue 26, part 5)."""
    async def main() -> None:
        marks = ChangeMarks(busy=lambda node_id: False)
        table = marks._at
        with marks.observing() as started:
            for node_id in range(30_000):  # (before: from 10,001 on, a new table each time)
                marks.mark(node_id)
                assert marks._at is table
            keep = marks.since(started)
            assert keep(0) and keep(29_999) and not keep(30_000)
            await trio.sleep(700)  # a listing slower than the old horizon
            marks.mark(7)  # marked again: its time is now
            assert len(marks._at) == 30_000 and marks.since(started)(0)
        await trio.sleep(1)
        with marks.observing() as later:
            marks.mark(30_000)
            assert set(marks._at) == {30_000}  # the rest is older than any observation
            assert not marks.since(later)(7) and marks.since(later)(30_000)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_directory_lock_lives_while_it_is_held_or_awaited() -> None:
    async def main() -> None:
        locks = DirectoryLocks()
        inside: list[str] = []

        async def writer(name: str, *dirs: int) -> None:
            async with locks.hold(*dirs):
                inside.append(f"{name} in")
                await trio.sleep(1)
                inside.append(f"{name} out")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, "a", 1, 2)
            await trio.sleep(0.1)
            nursery.start_soon(writer, "b", 2, 3)
            await trio.sleep(0.1)
            assert set(locks._locks) == {1, 2, 3}
        assert inside == ["a in", "a out", "b in", "b out"]  # one at a time on folder 2
        assert locks._locks == {}  # (before: every folder ever locked stayed)
        with trio.move_on_after(0.5):
            async with locks.hold(4):
                await trio.sleep(10)  # cancelled while held
        assert locks._locks == {}

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_chunk_failures_and_readers_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for reads of remote files: a failure remembered never rebuilds the table
    (before: past 1,024 fresh ones, each rebuilt it), and the last chunk read is kept for
    the most recent READERS_TRACKED files only (before: for every file ever read)."""
    from markfs.errors import FsError
    from markfs.model import Kind, Node
    from markfs.namespace.remote import chunks

    now = [1000.0]
    monkeypatch.setattr(chunks.time, "monotonic", lambda: now[0])
    reader = chunks.ChunkReader(cache=None, io=None, backend_of=None,  # type: ignore[arg-type]
                                io_timeout=1.0)
    table = reader._chunk_failures
    for number in range(5000):
        reader._remember_failure(b"c%d" % number, FsError(5))
        assert reader._chunk_failures is table
    now[0] += chunks.FAILURE_FRESH_S + 1
    reader._remember_failure(b"last", FsError(5))
    assert list(reader._chunk_failures) == [b"last"]
    for node_id in range(chunks.READERS_TRACKED + 100):
        node = Node(node_id, 1, b"f", Kind.SOURCE, 0o100644, 0, 0, 1, 0, 0)
        reader._maybe_read_ahead(node, 0, 0)
    assert len(reader._last_chunk) == chunks.READERS_TRACKED
    assert chunks.READERS_TRACKED + 99 in reader._last_chunk and 0 not in reader._last_chunk
