"""Metadata figures (not a test): warm stat latency over 10,000 files, and an mdtest-like
run of creates and stats (1 process and 4), on a markfs mount of a local source and on
the local directory underneath.

"Warm" stats: markfs has listed the folder (the catalog and its LMDB mirror hold every
node) and the kernel's caches have expired (`entry_ttl`/`attr_ttl` are 1 s), so every
stat is a FUSE LOOKUP answered by markfs.

    .venv/bin/python tools/bench/meta_bench.py [--files N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import Mount, in_process

from markfs.namespace.sources import add_source


def stat_latencies(folder: Path, names: list[str]) -> list[float]:
    out = []
    for name in names:
        start = time.perf_counter_ns()
        os.stat(folder / name)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def creates(folder: Path, worker: int, count: int) -> None:
    for i in range(count):
        fd = os.open(folder / f"w{worker}-{i}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.close(fd)


def stats(folder: Path, worker: int, count: int) -> None:
    for i in range(count):
        os.stat(folder / f"w{worker}-{i}")


def rate(action: object, folder: Path, procs: int, count: int) -> float:
    start = time.perf_counter()
    if procs == 1:
        action(folder, 0, count)  # type: ignore[operator]
    else:
        jobs = [multiprocessing.Process(target=action, args=(folder, w, count // procs))
                for w in range(procs)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
    return count / (time.perf_counter() - start)


def measure(label: str, folder: Path, names: list[str], expire: float) -> None:
    time.sleep(expire)
    lat = sorted(stat_latencies(folder, names))
    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
    rows = []
    for procs in (1, 4):
        work = folder / f"md{procs}-{len(label)}"
        work.mkdir()
        made = rate(creates, work, procs, 2000)
        time.sleep(expire)
        seen = rate(stats, work, procs, 2000)
        rows.append(f"{made:,.0f} / {seen:,.0f}")
    print(f"| {label} | {p50:.0f} | {p99:.0f} | {rows[0]} | {rows[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    count = parser.parse_args().files
    tmp = Path(tempfile.mkdtemp(prefix="meta-bench-"))
    try:
        local = tmp / "local"
        local.mkdir()
        names = [f"f{i:06d}" for i in range(count)]
        for name in names:
            (local / name).write_bytes(b"x")
        data = tmp / "data"
        in_process(lambda tree: add_source(tree, "loc", f"file://{local}", False), data)
        (tmp / "mnt").mkdir()
        mount = Mount(data, tmp / "mnt").start()
        try:
            folder = tmp / "mnt" / "sources" / "loc"
            os.listdir(folder)  # listed once: the catalog holds every node
            print(f"{count} files; stat latency in µs; creates/s / stats/s\n\n"
                  "| where | stat p50 | stat p99 | 1 process | 4 processes |\n"
                  "|---|---|---|---|---|")
            measure("markfs (local source)", folder, names, 1.5)
        finally:
            mount.stop()
        measure("the local directory itself", local, names, 0.0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
