"""Metadata figures (not a test): warm stat latency over 10,000 files, and an mdtest-like
run of creates and stats (1 process and 4), on a markfs mount of a local source, on the
same folder through rclone mount and sshfs (over a local sshd), and on the local
directory underneath. With `--nodes N` (e.g. 1000000): the catalog at N nodes — daemon
RSS after listing everything once, `ls -l` of a 100,000-entry folder, and stat latency
at N nodes against the same at 1,000.

"Warm" stats: markfs has listed the folder (the catalog and its LMDB mirror hold every
node) and the kernel's caches have expired (`entry_ttl`/`attr_ttl` are 1 s), so every
stat is a FUSE LOOKUP answered by markfs.

    .venv/bin/python tools/bench/meta_bench.py [--files N] [--nodes N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import Mount, in_process
from remote_bench import mounted
from servers import SshServer

from markfs.namespace.files.sources import add_source


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


def markfs_mount(tmp: Path, local: Path, name: str) -> Mount:
    data = tmp / f"data-{name}"
    in_process(lambda tree: add_source(tree, "loc", f"file://{local}", False), data)
    (tmp / f"mnt-{name}").mkdir()
    return Mount(data, tmp / f"mnt-{name}").start()


def peers(tmp: Path, local: Path, names: list[str]) -> None:
    """The same folder through rclone mount and sshfs, where installed."""
    if shutil.which("rclone"):
        with mounted(["rclone", "mount", str(local), str(tmp / "mnt-rclone")],
                     tmp / "mnt-rclone") as point:
            os.listdir(point)
            measure("rclone mount (the local folder)", point, names, 1.5)
    if shutil.which("sshfs"):
        ssh = SshServer.create(tmp / "sshd")
        ssh.start()
        try:
            with mounted(["sshfs", "-f", "-p", str(ssh.port), "-o",
                          f"IdentityFile={ssh.client_key},UserKnownHostsFile={ssh.known_hosts}",
                          f"root@127.0.0.1:{local}", str(tmp / "mnt-sshfs")],
                         tmp / "mnt-sshfs") as point:
                os.listdir(point)
                measure("sshfs (the local folder over a local sshd)", point, names, 1.5)
        finally:
            ssh.stop()


def daemon_rss_mb(mount: Mount) -> float:
    pid = json.loads((mount.path / ".markfs" / "status.json").read_text())["pid"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def make_tree(root: Path, nodes: int) -> list[Path]:
    """`nodes` files in folders of 1,000, one folder of 100,000 among them; the files."""
    files = []
    big = min(100_000, nodes // 2)
    (root / "big").mkdir(parents=True)
    files += [root / "big" / f"f{i:06d}" for i in range(big)]
    for folder in range((nodes - big + 999) // 1000):
        (root / f"d{folder:04d}").mkdir()
        files += [root / f"d{folder:04d}" / f"f{i:03d}" for i in range(1000)]
    for path in files[:nodes]:
        path.touch()
    return files[:nodes]


def stat_p50(mount: Mount, local: Path, files: list[Path]) -> float:
    sample = random.Random(1).sample(files, min(1000, len(files)))
    folder = mount.path / "sources" / "loc"
    time.sleep(1.5)  # the kernel's caches expire: each stat is a LOOKUP
    return statistics.median(stat_latencies(folder, [str(p.relative_to(local)) for p in sample]))


def at_scale(tmp: Path, nodes: int) -> None:
    small, large = tmp / "small", tmp / "large"
    small_files, large_files = make_tree(small, 1000), make_tree(large, nodes)
    mount = markfs_mount(tmp, small, "small")
    try:
        for _ in os.walk(mount.path / "sources" / "loc"):
            pass
        p50_small = stat_p50(mount, small, small_files)
    finally:
        mount.stop()
    mount = markfs_mount(tmp, large, "large")
    try:
        start = time.perf_counter()
        for _ in os.walk(mount.path / "sources" / "loc"):
            pass
        walk_s = time.perf_counter() - start
        rss = daemon_rss_mb(mount)
        time.sleep(1.5)
        start = time.perf_counter()
        subprocess.run(["ls", "-l", str(mount.path / "sources" / "loc" / "big")],
                       stdout=subprocess.DEVNULL, check=True)
        ls_big = time.perf_counter() - start
        p50_large = stat_p50(mount, large, large_files)
    finally:
        mount.stop()
    print(f"\n| {nodes:,} nodes | |\n|---|---|\n| first listing of everything | {walk_s:.1f} s |\n"
          f"| daemon RSS after it | {rss:.0f} MB |\n| `ls -l` of the 100,000-entry folder "
          f"(listed, kernel caches expired) | {ls_big:.2f} s |\n| stat p50, 1,000 nodes | "
          f"{p50_small:.0f} µs |\n| stat p50, {nodes:,} nodes | {p50_large:.0f} µs |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=0, help="also the catalog at N nodes")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    count = args.files
    tmp = Path(tempfile.mkdtemp(prefix="meta-bench-"))
    try:
        local = tmp / "local"
        local.mkdir()
        names = [f"f{i:06d}" for i in range(count)]
        for name in names:
            (local / name).write_bytes(b"x")
        mount = markfs_mount(tmp, local, "main")
        try:
            folder = mount.path / "sources" / "loc"
            os.listdir(folder)  # listed once: the catalog holds every node
            print(f"{count} files; stat latency in µs; creates/s / stats/s\n\n"
                  "| where | stat p50 | stat p99 | 1 process | 4 processes |\n"
                  "|---|---|---|---|---|")
            measure("markfs (local source)", folder, names, 1.5)
        finally:
            mount.stop()
        if not args.no_peers:
            peers(tmp, local, names)
        measure("the local directory itself", local, names, 0.0)
        if args.nodes:
            at_scale(tmp, args.nodes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
