"""One namespace on several hosts: the catalog in SQLite against PostgreSQL (not a test).

`make bench-multihost` (issue 27). Three setups over a local source, each mounted
afresh per round: `sqlite` (the embedded catalog, one host), `pg-1` (the catalog in
PostgreSQL, one daemon) and `pg-2` (two daemons with their own data directories over
one PostgreSQL catalog, as two hosts; each works in a folder of its own, at once).
Each times creates (open O_CREAT + close) from one client and from `CLIENTS` at once
(each in a folder of its own: a gateway's users), stats, readdirs of a folder of the
first client's files and renames, per second, through the mount with the kernel's
caches off (entry_ttl = attr_ttl = 0: each call reaches the daemon); and, on `pg-2`,
the latency from a close on host A to the name being visible on host B (B polls with
stat every 0.2 ms).
PostgreSQL runs with fsync=off, as in the tests; the rounds interleave the setups.
`--rtt-ms R`: the daemons reach PostgreSQL through a proxy that holds each chunk R/2 ms
each way (`latency_proxy.py`): a server on another machine (the round trip it makes,
measured, is printed first: the VM's timers and thread hand-offs add to R).

    .venv/bin/python tools/bench/multihost_bench.py [--runs 3] [--files 2000]
        [--json docs/img/multihost.json] [--plot-dir docs/img]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools" / "bench"))
from latency_proxy import LatencyProxy  # noqa: E402
from remote_bench import mounted  # noqa: E402
from servers import PostgresServer  # noqa: E402

MARKFS = [sys.executable, "-m", "markfs"]
CONFIG = "[mount]\nentry_ttl = 0\nattr_ttl = 0\nwatch_local = false\n"
SETUPS = ("sqlite", "pg-1", "pg-2")
CLIENTS = 4  # clients of one host creating at once
OPS = ("creates/s", f"creates/s x{CLIENTS}", "stats/s", "readdirs/s", "renames/s")
_databases = iter(range(1, 1_000_000))
_catalog_port: list[int] = []  # (the proxy's, with --rtt-ms)


def run(*args: str) -> None:
    import subprocess

    subprocess.run([*MARKFS, *args], check=True, capture_output=True)


def data_dir(work: Path, name: str, catalog: str | None, source: Path) -> Path:
    path = work / name
    run("--data-dir", str(path), "init", *(["--catalog", catalog] if catalog else []))
    (path / "markfs.toml").write_text(CONFIG)
    if catalog is None or name.endswith("-a"):
        run("--data-dir", str(path), "source", "add", "loc", f"file://{source}")
    return path


@contextmanager
def hosts(setup: str, work: Path, pg: PostgresServer) -> Iterator[list[Path]]:
    """The mount points of one setup's daemons (each mounts its own data directory)."""
    source = work / f"{setup}-source"
    source.mkdir()
    catalog = None
    if setup != "sqlite":
        name = f"bench{next(_databases)}"
        admin: Any = pg.connect()
        admin.execute(f"CREATE DATABASE {name}")
        admin.close()
        catalog = pg.url(name)
        if _catalog_port:
            catalog = catalog.replace(f":{pg.port}/", f":{_catalog_port[0]}/")
    names = ["a", "b"] if setup == "pg-2" else ["a"]
    dirs = [data_dir(work, f"{setup}-{n}", catalog, source) for n in names]
    with ExitStack() as stack:
        points = [stack.enter_context(mounted(
            [*MARKFS, "--data-dir", str(d), "mount", str(work / f"{d.name}-mnt"),
             "--foreground"], work / f"{d.name}-mnt")) for d in dirs]
        yield [p / "sources" / "loc" for p in points]


def rates(folder: Path, files: int) -> dict[str, float]:
    names = [folder / f"f{i}" for i in range(files)]
    out = {"creates/s": per_second(files, lambda: create_all(names))}
    out[f"creates/s x{CLIENTS}"] = per_second(files, lambda: at_once(folder, files))
    out["stats/s"] = per_second(files, lambda: [os.stat(n) for n in names])
    rounds = max(1, 20_000 // files)
    out["readdirs/s"] = per_second(rounds, lambda: [os.listdir(folder) for _ in range(rounds)])
    out["renames/s"] = per_second(files, lambda: [os.rename(n, n.with_name(n.name + "r"))
                                                 for n in names])
    return out


def at_once(folder: Path, files: int) -> None:
    """`files` creates from `CLIENTS` threads (os.open lets the GIL go), each in a folder
    of its own."""
    parts = [folder / f"client{k}" for k in range(CLIENTS)]
    for part in parts:
        part.mkdir()

    threads = [threading.Thread(target=create_all, args=(
        [part / f"f{i}" for i in range(files // CLIENTS)],)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def create_all(names: list[Path]) -> None:
    """Each a new empty file (open O_CREAT | O_EXCL, close), one after another."""
    for name in names:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def per_second(count: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def on_both(folders: list[Path], files: int) -> dict[str, float]:
    """Each host in a folder of its own, at once: the sum of their rates."""
    results: list[dict[str, float]] = []
    mine = [f / f"host{i}" for i, f in enumerate(folders)]
    for folder in mine:
        folder.mkdir()
    threads = [threading.Thread(target=lambda f=f: results.append(rates(f, files)))
               for f in mine]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {op: sum(r[op] for r in results) for op in OPS}


def round_trip_ms(port: int, times: int = 300) -> float:
    """What a statement with nothing to do costs through the proxy, in ms."""
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        start = time.perf_counter()
        for _ in range(times):
            conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - start) / times * 1000


def visibility_ms(a: Path, b: Path, samples: int) -> list[float]:
    """Close on A, then how long until B's stat finds the name."""
    found = []
    for i in range(samples):
        name = f"seen-{i}"
        os.close(os.open(a / name, os.O_WRONLY | os.O_CREAT, 0o644))
        closed = time.perf_counter()
        while True:
            try:
                os.stat(b / name)
                break
            except FileNotFoundError:
                time.sleep(0.0002)
        found.append((time.perf_counter() - closed) * 1000)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot-dir", type=Path)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {s: {op: [] for op in OPS} for s in SETUPS}
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="markfs-multihost-") as tmp, ExitStack() as stack:
        pg_root = Path(tempfile.mkdtemp(prefix="markfs-bench-pg-"))
        pg = PostgresServer(pg_root)
        pg.start()
        try:
            if args.rtt_ms:
                proxy = stack.enter_context(LatencyProxy(pg.port, args.rtt_ms / 2))
                _catalog_port.append(proxy.port)
                print(f"a round trip to the catalog's server: {round_trip_ms(proxy.port):.2f}"
                      " ms (through the proxy)", flush=True)
            for round_ in range(args.runs):
                for setup in SETUPS:
                    work = Path(tmp) / f"r{round_}"
                    work.mkdir(exist_ok=True)
                    with hosts(setup, work, pg) as folders:
                        got = (on_both(folders, args.files) if setup == "pg-2"
                               else rates(folders[0], args.files))
                        if setup == "pg-2":
                            latencies += visibility_ms(folders[0], folders[1], args.samples)
                    for op, value in got.items():
                        figures[setup][op].append(value)
                        print(f"round {round_ + 1} {setup:<7} {op:<11} {value:9.0f}", flush=True)
        finally:
            pg.stop()
    report(figures, latencies, args)


def report(figures: dict[str, dict[str, list[float]]], latencies: list[float],
           args: argparse.Namespace) -> None:
    medians = {s: {op: statistics.median(v) for op, v in ops.items()} for s, ops in
               figures.items()}
    print(f"\n| per second (median of {args.runs}) | " + " | ".join(SETUPS) + " |")
    print("|---|" + "---:|" * len(SETUPS))
    for op in OPS:
        print(f"| {op} | " + " | ".join(f"{medians[s][op]:,.0f}" for s in SETUPS) + " |")
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"\nclose on A -> visible on B: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max "
          f"{ordered[-1]:.2f} ms ({len(ordered)} samples)")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "medians": medians,
                                         "visible_ms": latencies, "p50_ms": p50,
                                         "p99_ms": p99}, indent=1))
    if args.plot_dir:
        plot(medians, ordered, args.plot_dir / "multihost.png")


def plot(medians: dict[str, dict[str, float]], latencies: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.26
    for i, setup in enumerate(SETUPS):
        left.bar([x + i * width for x in range(len(OPS))], [medians[setup][op] for op in OPS],
                 width, label=setup)
    left.set_xticks([x + width for x in range(len(OPS))], OPS)
    left.set_yscale("log")  # (stats come from the kernel: orders above the rest)
    left.set_ylabel("per second (median, log scale)")
    left.set_title("catalog in SQLite vs PostgreSQL, one host and two")
    left.legend()
    right.plot(latencies, [i / len(latencies) for i in range(len(latencies))])
    right.set_xscale("log")
    right.set_xlabel("ms from close on A to visible on B")
    right.set_ylabel("fraction of samples")
    right.set_title("change feed latency (CDF)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
