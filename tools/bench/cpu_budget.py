"""What one create costs in CPU, and so what a machine of N cores can do (not a test).

Issue 27's targets (≥ 1,000 creates/s per host on PostgreSQL, ≥ 2,000 across two) are
throughputs; on a small machine they are bounded by what a create costs in CPU, summed
over every process it runs through: the daemon (one interpreter: its threads share one
lock, so at most one core of Python), the PostgreSQL server, the client and the kernel's
side of each call (counted in the processes that make them). This mounts one daemon per
setup (`multihost_bench.hosts`), creates `--files` files from one client and from
`CLIENTS` at once, and reads each process's CPU time before and after from /proc: CPU
per create, by process, and the ceilings it implies — creates/s if every core did
nothing else (`cores × 1000 / total ms`), and creates/s if the daemons' interpreters
were the only limit (`hosts × 1000 / daemon ms`, one host and two): a setup's rate is
at most the lower of the two. `--rtt-ms R`: the daemons reach PostgreSQL through
`latency_proxy.py` run as a process of its own, its CPU a column apart (a server on
another machine costs this one nothing; the proxy does).

    .venv/bin/python tools/bench/cpu_budget.py [--files 4000] [--runs 3] [--setups pg-1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multihost_bench as bench
from servers import PostgresServer

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def processes() -> dict[int, str]:
    """Every process now: its pid and what it is (daemon, server or other)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(entry.name)] = ("daemon" if "-m markfs" in command and " mount " in command
                                      else "server" if command.startswith("postgres")
                                      else "proxy" if "latency_proxy.py" in command
                                      else "other")
    return found


def measured(work: Callable[[], object], count: int) -> dict[str, float]:
    """CPU ms per unit of `work` (`count` units) by kind of process, and its wall ms."""
    kinds = processes()
    before = {pid: _cpu_or_zero(pid) for pid in kinds}
    started, mine = time.perf_counter(), os.times()
    work()
    wall, done = time.perf_counter() - started, os.times()
    out = {"wall": wall, "client": (done.user - mine.user + done.system - mine.system)}
    for pid, kind in {**processes(), **kinds}.items():  # (a connection made meanwhile:
        if kind != "other":                              # a server process of its own)
            out[kind] = out.get(kind, 0.0) + _cpu_or_zero(pid) - before.get(pid, 0.0)
    return {kind: seconds * 1000 / count for kind, seconds in out.items()}


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def one_setup(setup: str, work: Path, pg: PostgresServer, files: int
              ) -> dict[str, dict[str, float]]:
    (work / setup).mkdir()
    with bench.hosts(setup, work / setup, pg) as folders:
        names = [folders[0] / "one" / f"f{i}" for i in range(files)]
        names[0].parent.mkdir()
        one = measured(lambda: bench.create_all(names), files)
        (folders[0] / "many").mkdir()
        many = measured(lambda: bench.at_once(folders[0] / "many", files), files)
    return {"x1": one, f"x{bench.CLIENTS}": many}


def report(setup: str, label: str, runs: list[dict[str, float]], cores: int) -> None:
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}
    daemon, server, client = med["daemon"], med.get("server", 0.0), med["client"]
    proxy = med.get("proxy", 0.0)
    total = daemon + server + client + proxy
    print(f"{setup:6s} {label:3s} {1000 / med['wall']:6.0f}/s   ms per create: daemon "
          f"{daemon:.2f} server {server:.2f} client {client:.2f}"
          + (f" proxy {proxy:.2f}" if proxy else "") + f" = {total:.2f}   at most: "
          f"{cores} cores {cores * 1000 / total:5.0f}/s; interpreters: one host "
          f"{1000 / daemon:5.0f}/s, two {2000 / daemon:5.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--setups", default="sqlite,pg-1", help="of sqlite, pg-1")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="markfs-cpu-"))
    work.chmod(0o755)
    pg = PostgresServer(work / "pg")
    pg.start()
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    proxy = None
    try:
        if args.rtt_ms:
            proxy = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("latency_proxy.py")),
                 str(pg.port), str(args.rtt_ms / 2)], stdout=subprocess.PIPE, text=True)
            assert proxy.stdout is not None
            bench._catalog_port.append(int(proxy.stdout.readline()))
        for round_ in range(args.runs):
            for setup in args.setups.split(","):
                (work / f"r{round_}").mkdir(exist_ok=True)
                got = one_setup(setup, work / f"r{round_}", pg, args.files)
                for label, row in got.items():
                    figures.setdefault((setup, label), []).append(row)
    finally:
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{cores} cores; medians of {args.runs} rounds, {args.files} creates each")
    for (setup, label), runs in figures.items():
        report(setup, label, runs, cores)


if __name__ == "__main__":
    main()
