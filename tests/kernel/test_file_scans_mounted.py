"""Search over what a mount listed: the catalog's own nodes found by name without a scan."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Mount, run_markfs


def test_search_finds_a_listed_file_by_name_without_a_scan(
        data_dir: Path, backing: Path, mount: Mount) -> None:
    """What `ls` showed is found (issue 24, part 8): the catalog's own nodes, by every
    word of the query, case aside; folders too; each path once."""
    (backing / "finance" / "2024").mkdir(parents=True)
    (backing / "finance" / "2024" / "Revenue-Q4.csv").write_text("x")
    os.listdir(mount.path / "sources" / "loc" / "finance" / "2024")
    out = run_markfs(data_dir, "search", "revenue").stdout
    assert out.count("/sources/loc/finance/2024/Revenue-Q4.csv\tfile") == 1, out
    assert "/sources/loc/finance\tfolder" in run_markfs(data_dir, "search", "finance").stdout
    assert run_markfs(data_dir, "search", "revenue", "q4").stdout.count("Revenue-Q4") == 1
    missed = run_markfs(data_dir, "search", "revenue", "q3", check=False)
    assert missed.returncode == 1 and "Revenue" not in missed.stdout
