"""Views, tags and categories over local sources, driven in process (no kernel):
membership by rules and pins, writes and removals, renames, outside changes
(where the CLI or a database takes part: tests/processes/test_views_commands.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import ROOT, InProcess, errno, errno_of, names, read_all, resolve

from markfs.errors import FsError
from markfs.namespace.ops import Namespace

# the core of the suite runs on both catalog engines (tests/conftest.py)
pytestmark = pytest.mark.both_engines


def test_a_view_shows_members_of_two_sources_below_their_fixed_prefix(
        finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes]]:
        return await names(ns, "/views/finance"), await names(ns, "/views/finance/q1")
    top, q1 = finance.run(body)
    assert top == [b"finance_q1.csv", b"finance_q2.csv", b"q1", b"q2", b"readme.txt"]
    assert q1 == [b"a.csv"]


def test_a_member_is_the_source_file_itself(finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[int, int, bytes]:
        in_view = await resolve(ns, "/views/finance/q1/a.csv")
        in_source = await resolve(ns, "/sources/lake/finance/2024/q1/a.csv")
        return in_view.id, in_source.id, await read_all(ns, in_view)
    view_id, source_id, data = finance.run(body)
    assert view_id == source_id and data == b"lake a"


def test_a_write_through_a_view_reaches_the_source(finance: InProcess,
                                                   two_sources: Path) -> None:
    async def body(ns: Namespace) -> None:
        node = await resolve(ns, "/views/finance/q2/b.csv")
        fh, _direct = await ns.open(node.id, os.O_WRONLY | os.O_TRUNC)
        await ns.write(fh, 0, b"rewritten")
        await ns.release(fh)
    finance.run(body)
    assert (two_sources / "lake/finance/2024/q2/b.csv").read_bytes() == b"rewritten"


def test_rm_of_a_member_by_rule_is_eperm_and_deletes_nothing(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> list[int]:
        q1 = await resolve(ns, "/views/finance/q1")
        view = await resolve(ns, "/views/finance")
        return [await errno_of(ns.unlink(q1.id, b"a.csv")),
                await errno_of(ns.rmdir(view.id, b"q1"))]
    assert finance.run(body) == [errno.EPERM, errno.EPERM]
    assert (two_sources / "lake/finance/2024/q1/a.csv").exists()


def test_creating_in_a_view_lands_in_its_landing_folder(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], int, int]:
        view = await resolve(ns, "/views/finance")
        fh, node = await ns.create(view.id, b"notes.txt", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, b"landed")
        await ns.release(fh)
        in_source = await resolve(ns, "/sources/reports/notes.txt")
        return await names(ns, "/views/finance"), node.id, in_source.id
    listed, created, in_source = finance.run(body)
    assert b"notes.txt" in listed and created == in_source
    assert (two_sources / "reports/notes.txt").read_bytes() == b"landed"


def test_renames_inside_a_view_are_erofs_and_out_of_it_exdev(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        view = await resolve(ns, "/views/finance")
        q1 = await resolve(ns, "/views/finance/q1")
        lake = await resolve(ns, "/sources/lake")
        return [await errno_of(ns.rename(q1.id, b"a.csv", view.id, b"a.csv", 0)),
                await errno_of(ns.rename(q1.id, b"a.csv", lake.id, b"a.csv", 0)),
                await errno_of(ns.rename(lake.id, b"other.txt", view.id, b"other.txt", 0))]
    assert finance.run(body) == [errno.EROFS, errno.EXDEV, errno.EXDEV]


def test_membership_follows_files_made_and_deleted_in_the_source(
        finance: InProcess, two_sources: Path) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], list[bytes]]:
        before = await names(ns, "/views/finance")
        (two_sources / "reports/finance_q3.csv").write_bytes(b"q3")
        (two_sources / "reports/finance_q1.csv").unlink()
        reports = await resolve(ns, "/sources/reports")
        # what dir_ttl or the watcher does:
        await ns.source_files.listings.ensure_listed(reports, force=True)
        return before, await names(ns, "/views/finance")
    before, after = finance.run(body)
    assert b"finance_q1.csv" in before and b"finance_q3.csv" not in before
    assert b"finance_q3.csv" in after and b"finance_q1.csv" not in after


def test_view_folders_keep_their_inodes_across_namespaces(
        finance: InProcess, data_dir: Path) -> None:
    async def body(ns: Namespace) -> tuple[int, int]:
        return (await resolve(ns, "/views/finance/q1")).id, (
            await resolve(ns, "/views/finance/q1/a.csv")).id
    first = finance.run(body)
    finance.close()
    again = InProcess(data_dir)
    try:
        assert again.run(body) == first
    finally:
        again.close()


# -- tags and categories --------------------------------------------------------------------

def test_tags_set_as_an_xattr_gather_files_under_tags(finance: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[list[bytes], bytes, list[bytes]]:
        a = await resolve(ns, "/sources/lake/finance/2024/q1/a.csv")
        r = await resolve(ns, "/sources/reports/a.csv")
        await ns.setxattr(a.id, b"user.markfs.tags", b"finance,q4")
        await ns.setxattr(r.id, b"user.markfs.tags", b"q4")
        return (await names(ns, "/tags"), await ns.getxattr(a.id, b"user.markfs.tags"),
                await names(ns, "/tags/q4"))
    tags, value, q4 = finance.run(body)
    assert tags == [b"finance", b"q4"] and value == b"finance,q4"
    assert q4 == [b"a~lake.csv", b"a~reports.csv"]


def test_a_tag_follows_its_file_across_a_rename(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[bytes]:
        lake = await resolve(ns, "/sources/lake")
        node = await resolve(ns, "/sources/lake/other.txt")
        await ns.setxattr(node.id, b"user.markfs.tags", b"keep")
        await ns.rename(lake.id, b"other.txt", lake.id, b"moved.txt", 0)
        return await names(ns, "/tags/keep")
    assert finance.run(body) == [b"moved.txt"]


def test_removing_the_last_tag_removes_its_folder(finance: InProcess) -> None:
    async def body(ns: Namespace) -> list[bytes]:
        node = await resolve(ns, "/sources/lake/other.txt")
        await ns.setxattr(node.id, b"user.markfs.tags", b"gone")
        await ns.removexattr(node.id, b"user.markfs.tags")
        return await names(ns, "/tags")
    assert finance.run(body) == []


def test_bad_tags_through_the_xattr_are_einval(finance: InProcess) -> None:
    async def body(ns: Namespace) -> int:
        node = await resolve(ns, "/sources/lake/other.txt")
        try:
            await ns.setxattr(node.id, b"user.markfs.tags", b"a/b")
        except FsError as exc:
            return exc.code
        return 0
    assert finance.run(body) == errno.EINVAL


# -- fsck --------------------------------------------------------------------------------------


# -- the CLI beside a running daemon ---------------------------------------------------------


def test_a_glob_of_many_spans_costs_a_match_per_path_part_and_glob_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20 `**` against a path 150 folders deep (issue 24, part 7): the matcher steps
    through the path once, with every glob position at once — the recursive one tried
    every way to split the path among the spans (hours at this depth)."""
    from markfs.namespace.curation import membership

    calls = [0]
    real = membership.fnmatchcase

    def counted(name: bytes, pattern: bytes) -> bool:
        calls[0] += 1
        return real(name, pattern)

    monkeypatch.setattr(membership, "fnmatchcase", counted)
    pattern = membership.Pattern.parse("/".join(["**"] * 20) + "/x*")
    deep = tuple([b"d"] * 150)
    assert not pattern.matches(deep) and pattern.matches((*deep, b"x.csv"))
    assert pattern.may_hold(deep)
    assert calls[0] <= 3 * (151 * 2)  # three calls, each at most (parts + 1) x 2 matches
    exact = membership.Pattern.parse("a/*/b/**/c?")
    for path, wanted in (("a/x/b/c1", True), ("a/x/b/y/z/c2", True), ("a/b/c1", False),
                         ("a/x/y/b/c1", False), ("a/x/b/c12", False)):
        assert exact.matches(tuple(path.encode().split(b"/"))[1:]) == wanted, path


