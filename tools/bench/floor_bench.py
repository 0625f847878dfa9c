"""What a FUSE filesystem costs at the least, in C and in Python, beside markfs (not a
test; issue 25, part 9: "show it with the measurement").

On one local folder each: the plain folder, libfuse's own `passthrough_ll` (C, built
here from the example Debian's libfuse3-dev ships; `-o xattr` so it answers extended
attributes as markfs does, `cache=always`), `bare_pyfuse3.py` (the least a pyfuse3
filesystem can do: one system call a request, on the trio loop) and markfs with a local
source. The same workloads as `make bench-small`'s local rows, 3 interleaved rounds,
medians. What the bare pyfuse3 passthrough takes is the floor of any filesystem written
on pyfuse3 and trio; markfs cannot go below it without a compiled request path.

    .venv/bin/python tools/bench/floor_bench.py [--runs 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
from remote_bench import mounted, timed  # noqa: E402
from small_bench import (  # noqa: E402
    Data,
    Results,
    Sizes,
    Tool,
    creates_per_s,
    four_tars,
    markfs_tool,
    percentile,
    plain_tool,
    rsync_in,
    seed_folder,
    stat_times,
    tar_x,
)

EXAMPLE = Path("/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c")
TOOLS = ["folder", "libfuse C", "bare pyfuse3", "markfs"]


def build_passthrough(work: Path) -> Path:
    binary = work / "passthrough_ll"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", str(binary), str(EXAMPLE), *flags], check=True)
    return binary


def c_tool(binary: Path, folder: Path, point: Path) -> Tool:
    cmd = [str(binary), "-f", "-o", f"source={folder},xattr,cache=always", str(point)]
    return Tool("libfuse C", lambda: mounted(cmd, point), point)


def bare_tool(folder: Path, point: Path) -> Tool:
    cmd = [sys.executable, str(ROOT / "tools" / "bench" / "bare_pyfuse3.py"), str(folder),
           str(point)]
    return Tool("bare pyfuse3", lambda: mounted(cmd, point), point)


def one_round(tool: Tool, data: Data, results: Results, number: int) -> None:
    sizes = data.sizes
    with tool.mount() as point:
        base = tool.base(point)
        mine = base / f"run{number}"
        mine.mkdir()
        add = lambda row, value, unit="s": results.add("floor", row, tool.name, value, unit)  # noqa: E731
        add("tar -xf", timed(lambda: tar_x(data, mine / "tar")))
        tool.drain(point)
        add("4 x tar -xf at once", timed(lambda: four_tars(data, mine / "tar4")))
        tool.drain(point)
        add("rsync -a in", timed(lambda: rsync_in(data, mine / "rsync")))
        tool.drain(point)
        add("creates/s", creates_per_s(sizes, mine / "creates"), "/s")
        names = [mine / "creates" / f"c{n:05d}" for n in range(sizes.creates)]
        stat_times(names)
        add("stat p50, at once", percentile(stat_times(names), 0.5), "µs")


@contextmanager
def tools(work: Path, data: Data) -> Iterator[list[Tool]]:
    binary = build_passthrough(work)
    folders = {name: work / f"under-{n}" for n, name in enumerate(TOOLS)}
    for folder in folders.values():
        seed_folder(folder, data)
    yield [plain_tool(folders["folder"]),
           c_tool(binary, folders["libfuse C"], work / "mnt-c"),
           bare_tool(folders["bare pyfuse3"], work / "mnt-bare"),
           markfs_tool(work, "local", f"file://{folders['markfs']}")]


def table(results: Results) -> str:
    medians = results.medians()
    lines = ["| " + " | ".join(["", *TOOLS]) + " |", "|---" * (len(TOOLS) + 1) + "|"]
    for (_, row), by_tool in medians.items():
        unit = results.units[row]
        lines.append(f"| {row} | " + " | ".join(
            f"{by_tool[t]:.3g} {unit}" if t in by_tool else "" for t in TOOLS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tools", default="", help="comma-separated, of: " + ", ".join(TOOLS))
    args = parser.parse_args()
    wanted = set(filter(None, args.tools.split(",")))
    sizes = Sizes(tar_files=300, creates=500, listed=10, big_mib=1, huge_mib=1) \
        if args.quick else Sizes(listed=10, big_mib=1, huge_mib=1)
    results = Results()
    with tempfile.TemporaryDirectory(prefix="markfs-floor-") as name:
        work = Path(name)
        data = Data(work, sizes)
        data.make()
        with tools(work, data) as chosen:
            chosen = [tool for tool in chosen if not wanted or tool.name in wanted]
            for number in range(args.runs):
                for tool in chosen:
                    print(f"round {number + 1}: {tool.name}", flush=True)
                    one_round(tool, data, results, number)
                    time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + table(results))
    if args.json:
        args.json.write_text(json.dumps(
            [{"row": r, "unit": results.units[r], "runs": by_tool}
             for (_, r), by_tool in results.figures.items()], indent=1))


if __name__ == "__main__":
    main()
