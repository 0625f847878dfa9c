"""Fixtures the in-process tests of two layers share (tests/inprocess and
tests/processes): a local source with a read-only one beside it, and two local sources
gathered by a view. Loaded by tests/conftest.py as a plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import add_source_now, in_process
from harness import InProcess

from markfs.namespace.curation import definitions
from markfs.namespace.files.sources import SourceSet, add_source


@pytest.fixture
def local(data_dir: Path, backing: Path) -> Iterator[InProcess]:
    (backing / "a.txt").write_bytes(b"alpha")
    (backing / "sub").mkdir()
    add_source_now(data_dir, "ro", f"file://{backing}/sub", read_only=True)
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()


@pytest.fixture
def two_sources(data_dir: Path, tmp_path: Path) -> Path:
    """`lake` (a folder tree) and `reports` (flat), as local sources."""
    lake, reports = tmp_path / "lake", tmp_path / "reports"
    for path, data in {"finance/2024/q1/a.csv": b"lake a", "finance/2024/q2/b.csv": b"lake b",
                       "finance/2023/old.csv": b"old", "finance/2024/readme.txt": b"r",
                       "other.txt": b"o"}.items():
        (lake / path).parent.mkdir(parents=True, exist_ok=True)
        (lake / path).write_bytes(data)
    reports.mkdir()
    for name in ("finance_q1.csv", "finance_q2.csv", "summary.txt", "a.csv"):
        (reports / name).write_bytes(f"report {name}".encode())
    in_process(lambda tree: [add_source(tree, name, f"file://{tmp_path / name}", False)
                             for name in ("lake", "reports")], data_dir)
    return tmp_path


@pytest.fixture
def finance(data_dir: Path, two_sources: Path) -> Iterator[InProcess]:
    in_process(lambda tree: definitions.add_view(
        tree, SourceSet(tree), "finance", ["lake:finance/2024/**", "reports:finance_*.csv"],
        landing="reports"), data_dir)
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()
