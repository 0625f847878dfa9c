"""`markfs view`, `tag` and `category` on bad input: one line, exit 1, nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_markfs


@pytest.fixture
def sources(data_dir: Path, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    (lake / "finance").mkdir(parents=True)
    (lake / "finance" / "a.csv").write_bytes(b"a")
    run_markfs(data_dir, "source", "add", "lake", f"file://{lake}")
    run_markfs(data_dir, "source", "add", "frozen", f"file://{lake}", "--read-only")
    return lake


def refused(data_dir: Path, *args: str) -> str:
    done = run_markfs(data_dir, *args, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    return done.stderr


@pytest.mark.parametrize("args, says", [
    (("view", "add", "v", "nosuch:*"), "unknown source: 'nosuch'"),
    (("view", "add", "v", "lake"), "a rule is SOURCE:GLOB"),
    (("view", "add", "v", "lake:../etc/*"), "'..'"),
    (("view", "add", "v", "lake:/abs/*"), "relative path"),
    (("view", "add", "v", "lake:a**b"), "'**' must be a whole path part"),
    (("view", "add", "a/b", "lake:*"), "invalid view name"),
    (("view", "add", "..", "lake:*"), "invalid view name"),
    (("view", "add", "v", "lake:*", "--landing", "frozen"), "read-only"),
    (("view", "add", "v", "lake:*", "--landing", "lake/nowhere"), "no such path"),
    (("view", "add", "v", "lake:*", "--landing", "nosuch/x"), "unknown source"),
])
def test_a_bad_view_is_refused_and_nothing_is_added(
        data_dir: Path, sources: Path, args: tuple[str, ...], says: str) -> None:
    assert says in refused(data_dir, *args)
    assert run_markfs(data_dir, "view", "list").stdout == ""


def test_a_view_name_that_exists_is_refused(data_dir: Path, sources: Path) -> None:
    run_markfs(data_dir, "view", "add", "v", "lake:*")
    assert "exists already" in refused(data_dir, "view", "add", "v", "lake:finance/*")
    assert "lake:*" in run_markfs(data_dir, "view", "show", "v").stdout


@pytest.mark.parametrize("args, says", [
    (("view", "show", "nope"), "unknown view: 'nope'"),
    (("view", "remove", "nope"), "unknown view: 'nope'"),
    (("view", "pin", "nope", "/sources/lake/finance/a.csv"), "unknown view"),
    (("tag", "add", "a,b", "/sources/lake/finance/a.csv"), "invalid tag name"),
    (("tag", "add", "x/y", "/sources/lake/finance/a.csv"), "invalid tag name"),
    (("tag", "add", "ok", "/sources/lake/missing.csv"), "no such path"),
    (("tag", "add", "ok", "/views"), "only files and folders of sources and tables"),
    (("tag", "remove", "never", "/sources/lake/finance/a.csv"), "unknown tag"),
    (("category", "assign", "nope", "/sources/lake/finance/a.csv"), "unknown category"),
    (("category", "add", "a//b/../c"), "invalid category name"),
    (("category", "remove", "nope"), "unknown category"),
])
def test_bad_curation_commands_are_refused(
        data_dir: Path, sources: Path, args: tuple[str, ...], says: str) -> None:
    assert says in refused(data_dir, *args)
    assert run_markfs(data_dir, "tag", "list").stdout == ""


def test_view_show_counts_members_and_bytes(data_dir: Path, sources: Path) -> None:
    (sources / "finance" / "b.csv").write_bytes(b"bbb")
    run_markfs(data_dir, "view", "add", "v", "lake:finance/*.csv", "--landing", "lake/finance")
    run_markfs(data_dir, "view", "pin", "v", "/sources/lake/finance")
    shown = run_markfs(data_dir, "view", "show", "v").stdout
    assert "rule    lake:finance/*.csv" in shown and "landing lake/finance" in shown
    assert "members 3 (4 bytes)" in shown  # a.csv, b.csv and the pinned folder


def test_removing_a_view_keeps_its_files(data_dir: Path, sources: Path) -> None:
    run_markfs(data_dir, "view", "add", "v", "lake:finance/*")
    run_markfs(data_dir, "view", "remove", "v")
    assert run_markfs(data_dir, "view", "list").stdout == ""
    assert (sources / "finance" / "a.csv").read_bytes() == b"a"
    assert run_markfs(data_dir, "fsck").returncode == 0
