"""The Grafana dashboard in the repository (tools/grafana/markfs.json) asks only for
metrics the daemon exports: a renamed counter fails here, not on an operator's screen."""

from __future__ import annotations

import json
import re
from pathlib import Path

from markfs.metrics import METRICS

DASHBOARD = Path(__file__).resolve().parents[2] / "tools" / "grafana" / "markfs.json"


def exported() -> set[str]:
    """Every series name the registry writes (counters with _total, histograms' parts)."""
    return {line.split("{")[0].split(" ")[0]
            for line in METRICS.text().decode().splitlines()
            if line and not line.startswith("#")} | {
        name for line in METRICS.text().decode().splitlines()
        if line.startswith("# TYPE") for name in [line.split()[2]]}


def test_every_series_the_dashboard_asks_for_is_exported() -> None:
    board = json.loads(DASHBOARD.read_text())
    asked = {name for panel in board["panels"] for target in panel["targets"]
             for name in re.findall(r"\bmarkfs_[a-z_]+", target["expr"])}
    names = exported()
    missing = sorted(a for a in asked if a not in names and not any(
        a == f"{n}{suffix}" for n in names for suffix in ("_total", "_bucket", "_count",
                                                          "_sum")))
    assert asked and not missing, missing


def test_it_shows_requests_latency_uploads_cache_and_feed_lag_per_host() -> None:
    board = json.loads(DASHBOARD.read_text())
    text = json.dumps(board["panels"])
    for series in ("markfs_fuse_request_seconds", "markfs_uploads_pending",
                   "markfs_cache_hits", "markfs_feed_behind"):
        assert series in text
    assert all("instance" in t["expr"] for p in board["panels"] for t in p["targets"])
