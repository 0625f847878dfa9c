"""Does a busy mount slow down with what it has done? (not a test; issue 25, part 8)

Rounds of N create+touch+unlink on a markfs mount of a local source, one after another at a
constant rate per round; prints the seconds of each round and the daemon's CPU in it.
Flat rounds: no structure a request walks or rebuilds grows with past work.

    .venv/bin/python tools/bench/churn_bench.py [--rounds 10] [--per-round 2500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import Mount, in_process

from markfs.namespace.files.sources import add_source


def daemon_cpu_s(mount: Mount) -> float:
    assert mount.proc is not None
    fields = Path(f"/proc/{mount.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=2500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="markfs-churn-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "local").mkdir()
        in_process(lambda tree: add_source(tree, "loc", f"file://{tmp / 'local'}", False),
                   tmp / "data")
        (tmp / "mnt").mkdir()
        mount = Mount(tmp / "data", tmp / "mnt").start()
        try:
            folder = mount.path / "sources" / "loc"
            for number in range(args.rounds):
                cpu, start = daemon_cpu_s(mount), time.perf_counter()
                for index in range(args.per_round):
                    path = folder / f"f{number}-{index}"
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
                    os.utime(path)  # (touch: a setattr, which marks the file)
                    os.unlink(path)
                print(f"round {number + 1}: {time.perf_counter() - start:.2f} s, daemon CPU "
                      f"{daemon_cpu_s(mount) - cpu:.2f} s", flush=True)
        finally:
            mount.stop()


if __name__ == "__main__":
    main()
