"""Small files and metadata, markfs against the peers where people work (not a test).

`make bench-small` (issue 25). On a local source against the plain folder, on S3
(SeaweedFS) against rclone mount (`--vfs-cache-mode writes`) and s3fs, and on SFTP
against sshfs on the same sshd, it times: `tar -xf` of Python's standard library
(~1,400 files), 4 of them at once, `git clone` of a 135-commit repository, `rsync -a`
in and a checksum dry run back, sqlite inserting 20,000 rows in 100 transactions,
creates/s, stat p50/p99 at once and after the kernel's 1 s, `ls -l` of 10,000 files
cold and warm, cp out and in of 256 MiB and of 1 GiB; and through Samba (smbd on a free
loopback port sharing each filesystem, as teams reach a mount): smbclient put and get of
256 MiB and `mput` of 300 small files.

Each filesystem is mounted afresh for each of `--runs` rounds and the filesystems take
turns within a round (interleaved: this VM's noise falls on all alike); the page shows
medians. Times are what the command took, as its user waits for it; write-back
filesystems (markfs, rclone in `writes` mode) then finish their uploads before the next
step starts, and "until uploaded" rows say how long that took in all.

    .venv/bin/python tools/bench/small_bench.py [--runs 3] [--only local,s3,sftp]
        [--quick] [--json out.json] [--plot-dir docs/img]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools" / "bench"))
from remote_bench import mounted, timed  # noqa: E402
from servers import SambaServer, SeaweedServer, SshServer, free_port  # noqa: E402

MARKFS = [sys.executable, "-m", "markfs"]
WRITE_BACK = "write-back after the commands"  # (a row of the tables, not of the plots)
BUCKET = "small"
COMMITS = 135


@dataclass
class Sizes:
    tar_files: int = 1403  # files of Python's standard library in the tarball
    rows: int = 20_000
    transactions: int = 100
    creates: int = 2000
    listed: int = 10_000
    big_mib: int = 256
    huge_mib: int = 1024
    smb_files: int = 300  # files of the tarball's tree put through Samba


@dataclass
class Results:
    # (where, row) -> tool -> one figure per run
    figures: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, row: str, tool: str, value: float, unit: str = "s") -> None:
        self.figures.setdefault((where, row), {}).setdefault(tool, []).append(value)
        self.units[row] = unit
        print(f"  {where:<6} {row:<34} {tool:<8} {value:10.3f} {unit}", flush=True)

    def medians(self) -> dict[tuple[str, str], dict[str, float]]:
        return {key: {tool: statistics.median(v) for tool, v in by_tool.items()}
                for key, by_tool in self.figures.items()}


# -- the data every filesystem gets -----------------------------------------------------


class Data:
    """The tarball, the git repository, the rsync tree and the large file, made once."""

    def __init__(self, work: Path, sizes: Sizes) -> None:
        self.work = work
        self.sizes = sizes
        self.tar = work / "stdlib.tar"
        self.repo = work / "repo"
        self.tree = work / "tree"
        self.big = work / "big.bin"
        self.huge = work / "huge.bin"
        self.smb_files = work / "smb-files"

    def make(self) -> None:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        system = Path("/usr/lib") / stdlib.name  # (Debian's: the 1,403 files)
        stdlib = system if system.is_dir() else stdlib
        files = sorted(p.relative_to(stdlib) for p in stdlib.rglob("*")
                       if p.is_file() and not p.is_symlink()
                       and not {"site-packages", "dist-packages"} & set(p.parts))
        files = files[:self.sizes.tar_files]
        listing = self.work / "files.txt"
        listing.write_text("".join(f"{name}\n" for name in files))
        subprocess.run(["tar", "-cf", str(self.tar), "-C", str(stdlib), "-T", str(listing)],
                       check=True)
        self.tree.mkdir()
        subprocess.run(["tar", "-xf", str(self.tar), "-C", str(self.tree)], check=True)
        self._make_repo(files)
        for path, mib in ((self.big, self.sizes.big_mib), (self.huge, self.sizes.huge_mib)):
            with open(path, "wb") as f:
                for _ in range(mib):
                    f.write(os.urandom(1 << 20))  # (no block repeats: nothing dedupes it)
        self.smb_files.mkdir()
        for number, name in enumerate(files[:self.sizes.smb_files]):
            shutil.copyfile(self.tree / name, self.smb_files / f"{number:03d}-{name.name}")
        print(f"data: {len(files)} files in the tarball "
              f"({self.tar.stat().st_size >> 20} MiB), {COMMITS} commits, "
              f"{self.sizes.big_mib} MiB file", flush=True)

    def _make_repo(self, files: list[Path]) -> None:
        """COMMITS commits, each adding a slice of the tree's files."""
        env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.org",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.org"}
        git = ["git", "-C", str(self.repo)]
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        step = max(1, len(files) // COMMITS)
        for number in range(COMMITS):
            for name in files[number * step:(number + 1) * step]:
                (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.tree / name, self.repo / name)
            (self.repo / "CHANGES").write_text(f"commit {number}\n")
            subprocess.run([*git, "add", "-A"], check=True)
            subprocess.run([*git, "commit", "-q", "-m", f"commit {number}"], check=True, env=env)


# -- workloads: each takes a fresh folder inside a filesystem ---------------------------


def run(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def tar_x(data: Data, folder: Path) -> None:
    folder.mkdir()
    run("tar", "-xf", str(data.tar), "-C", str(folder))


def four_tars(data: Data, folder: Path) -> None:
    folder.mkdir()
    for n in range(4):
        (folder / str(n)).mkdir()
    procs = [subprocess.Popen(["tar", "-xf", str(data.tar), "-C", str(folder / str(n))])
             for n in range(4)]
    if any(p.wait() for p in procs):
        raise RuntimeError("a tar failed")


def git_clone(data: Data, folder: Path) -> None:
    run("git", "clone", "-q", "--no-local", str(data.repo), str(folder))


def rsync_in(data: Data, folder: Path) -> None:
    run("rsync", "-a", f"{data.tree}/", f"{folder}/")


def rsync_check(data: Data, folder: Path) -> None:
    """Every byte read back: a checksum dry run must find nothing to send."""
    out = subprocess.run(["rsync", "-a", "--checksum", "--dry-run", "-i", f"{data.tree}/",
                          f"{folder}/"], check=True, capture_output=True).stdout
    if out.strip():
        raise RuntimeError(f"rsync found differences: {out[:200]!r}")


def sqlite_rows(sizes: Sizes, folder: Path) -> None:
    """`rows` rows in `transactions` transactions, in a process of its own (so the
    bench holds no file in the mount)."""
    code = ("import sqlite3,sys\n"
            "db=sqlite3.connect(sys.argv[1]);db.execute('create table t(a,b)')\n"
            "n,t=int(sys.argv[2]),int(sys.argv[3])\n"
            "for i in range(t):\n"
            "  with db: db.executemany('insert into t values(?,?)',"
            "[(j,'x'*40) for j in range(n//t)])\n"
            "assert db.execute('select count(*) from t').fetchone()[0]==n\n")
    folder.mkdir()
    run(sys.executable, "-c", code, str(folder / "db.sqlite"), str(sizes.rows),
        str(sizes.transactions))


def creates_per_s(sizes: Sizes, folder: Path) -> float:
    try:
        folder.mkdir()
    except OSError as exc:
        print(f"    failed: {exc}", flush=True)
        return float("nan")
    started = time.perf_counter()
    for n in range(sizes.creates):
        os.close(os.open(folder / f"c{n:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    return sizes.creates / (time.perf_counter() - started)


def stat_times(names: list[Path]) -> list[float]:
    """Microseconds of each stat of `names`."""
    times = []
    for path in names:
        started = time.perf_counter_ns()
        try:
            os.stat(path)
        except OSError:
            return []
        times.append((time.perf_counter_ns() - started) / 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ls_long(folder: Path) -> None:
    run("ls", "-l", str(folder))


def mib(size: int) -> str:
    return f"{size >> 10} GiB" if size >= 1024 else f"{size} MiB"


def cp_out(data: Data, folder: Path, name: str = "big.bin") -> None:
    out = data.work / "out.bin"
    run("cp", str(folder / name), str(out))
    out.unlink()


def cp_in(data: Data, folder: Path, source: Path | None = None) -> None:
    source = source or data.big
    run("cp", str(source), str(folder / f"in-{source.name}"))


@dataclass
class Smb:
    """smbd sharing every filesystem of the bench (share name: the tool's, with its
    `where`), each share the folder the tool's files are in."""

    server: SambaServer

    def run(self, share: str, *commands: str) -> None:
        done = self.server.client(share, *commands)
        if done.returncode != 0 or "NT_STATUS" in done.stdout + done.stderr:
            raise RuntimeError(f"smbclient: {(done.stdout + done.stderr).strip()[-300:]}")


def smb_rows(smb: Smb, share: str, data: Data, folder: str,
             add: Callable[[str, float], None]) -> None:
    """put and get of the 256 MiB file, `mput` of the small files, into `folder` (a
    folder of the share that exists)."""
    out = data.work / "smb-out.bin"
    size = mib(data.sizes.big_mib)
    add(f"smb put {size}", timed(lambda: smb.run(share, f"cd {folder}",
                                                 f"put {data.big} smb-big.bin")))
    add(f"smb get {size}", timed(lambda: smb.run(share, f"cd {folder}",
                                                 f"get smb-big.bin {out}")))
    out.unlink()
    add(f"smb mput {data.sizes.smb_files} files", timed(lambda: smb.run(
        share, f"lcd {data.smb_files}", f"cd {folder}", "mkdir m", "cd m", "prompt off",
        "mput *")))


# -- filesystems ------------------------------------------------------------------------


@dataclass
class Tool:
    """One filesystem under test: how to mount it, where its files are, how to wait for
    what it still uploads."""

    name: str
    mount: Callable[[], AbstractContextManager[Path]]
    point: Path  # where it is mounted (the plain folder: the folder)
    base: Callable[[Path], Path] = lambda point: point
    drain: Callable[[Path], None] = lambda point: None


def markfs_tool(work: Path, slug: str, url: str) -> Tool:
    data = work / f"markfs-{slug}"

    @contextmanager
    def mount() -> Iterator[Path]:
        if not data.exists():
            run(*MARKFS, "--data-dir", str(data), "init")
            run(*MARKFS, "--data-dir", str(data), "source", "add", "b", url)
        shutil.rmtree(data / "cache", ignore_errors=True)  # cold: nothing cached ahead
        with mounted([*MARKFS, "--data-dir", str(data), "mount", "--foreground",
                      str(work / f"mnt-markfs-{slug}")], work / f"mnt-markfs-{slug}") as p:
            yield p

    def drain(point: Path) -> None:
        status = point / ".markfs" / "status.json"
        while json.loads(status.read_text())["uploads_pending"]:
            time.sleep(0.02)

    return Tool("markfs", mount, work / f"mnt-markfs-{slug}", lambda p: p / "sources" / "b",
                drain)


def plain_tool(folder: Path) -> Tool:
    @contextmanager
    def mount() -> Iterator[Path]:
        run("sync")
        yield folder
    return Tool("folder", mount, folder)


def rclone_s3_tool(work: Path, endpoint: str) -> Tool:
    port = free_port()
    point = work / "mnt-rclone"
    cmd = ["rclone", "mount", f":s3:{BUCKET}", str(point), "--s3-provider", "Other",
           "--s3-endpoint", endpoint, "--s3-access-key-id", "test",
           "--s3-secret-access-key", "test", "--s3-force-path-style", "--s3-env-auth=false",
           "--vfs-cache-mode", "writes", "--cache-dir", str(work / "rclone-cache"),
           "--rc", "--rc-no-auth", "--rc-addr", f"127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}

    def drain(_point: Path) -> None:
        """Until rclone's VFS cache has nothing queued or in flight (its write-back
        waits 5 s after close, then uploads)."""
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/vfs/stats",
                                             data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                cache = json.load(answer).get("diskCache", {})
            if not cache.get("uploadsInProgress") and not cache.get("uploadsQueued"):
                return
            time.sleep(0.1)

    return Tool("rclone", lambda: mounted(cmd, point, env), point, drain=drain)


def s3fs_tool(work: Path, endpoint: str) -> Tool:
    password = work / "s3fs-pw"
    password.write_text("test:test\n")
    password.chmod(0o600)
    point = work / "mnt-s3fs"
    cmd = ["s3fs", BUCKET, str(point), "-f", "-o",
           f"passwd_file={password},url={endpoint},use_path_request_style,endpoint=us-east-1"]
    return Tool("s3fs", lambda: mounted(cmd, point), point)


def sshfs_tool(work: Path, ssh: SshServer, root: Path) -> Tool:
    point = work / "mnt-sshfs"
    cmd = ["sshfs", "-f", "-p", str(ssh.port), "-o",
           f"IdentityFile={ssh.client_key},StrictHostKeyChecking=no,"
           f"UserKnownHostsFile={ssh.known_hosts}", f"root@127.0.0.1:{root}", str(point)]
    return Tool("sshfs", lambda: mounted(cmd, point), point)


# -- one round ----------------------------------------------------------------------------


def one_round(where: str, tool: Tool, data: Data, results: Results, number: int,
              smb: Smb | None) -> None:
    """Every workload on a fresh mount of `tool`; its files go to `run<number>/`."""
    sizes = data.sizes
    with tool.mount() as point:
        base = tool.base(point)
        add = lambda row, value, unit="s": results.add(where, row, tool.name, value, unit)  # noqa: E731
        add("ls -l 10,000 files, cold", timed(lambda: ls_long(base / "listed")))
        add("ls -l 10,000 files, warm", timed(lambda: ls_long(base / "listed")))
        mine = base / f"run{number}-{tool.name}"
        mine.mkdir()
        uploading = 0.0
        for row, work in (("tar -xf", lambda: tar_x(data, mine / "tar")),
                          ("4 x tar -xf at once", lambda: four_tars(data, mine / "tar4")),
                          ("git clone", lambda: git_clone(data, mine / "git")),
                          ("rsync -a in", lambda: rsync_in(data, mine / "rsync")),
                          ("rsync --checksum dry run", lambda: rsync_check(data, mine / "rsync")),
                          ("sqlite 20k rows / 100 tx", lambda: sqlite_rows(sizes, mine / "db")),
                          (f"cp in {mib(sizes.big_mib)}", lambda: cp_in(data, mine)),
                          (f"cp out {mib(sizes.big_mib)}", lambda: cp_out(data, base)),
                          (f"cp in {mib(sizes.huge_mib)}", lambda: cp_in(data, mine, data.huge)),
                          (f"cp out {mib(sizes.huge_mib)}",
                           lambda: cp_out(data, base, "huge.bin"))):
            add(row, timed(work))
            uploading += timed(lambda: tool.drain(point))
        if smb is not None:
            smb_rows(smb, f"{where}-{tool.name}", data, mine.name,
                     lambda row, value: add(row, value))
            uploading += timed(lambda: tool.drain(point))
        add(WRITE_BACK, uploading)
        run("sync")  # (the GiBs written above must not be flushed while files are made)
        add("creates/s", creates_per_s(sizes, mine / "creates"), "/s")
        uploading += timed(lambda: tool.drain(point))
        # (the names are read once: a listing would fill the kernel's caches afresh)
        names = [mine / "creates" / f"c{n:05d}" for n in range(sizes.creates)]
        stat_times(names)
        at_once = stat_times(names)
        time.sleep(1.2)  # past a 1 s kernel cache (markfs's default, rclone's, s3fs's)
        later = stat_times(names)
        add("stat p50, at once", percentile(at_once, 0.5), "µs")
        add("stat p99, at once", percentile(at_once, 0.99), "µs")
        add("stat p50, after 1.2 s", percentile(later, 0.5), "µs")
        add("stat p99, after 1.2 s", percentile(later, 0.99), "µs")


# -- servers and seeding --------------------------------------------------------------------


def seed_folder(root: Path, data: Data) -> None:
    listed = root / "listed"
    listed.mkdir(parents=True)
    for n in range(data.sizes.listed):
        (listed / f"l{n:05d}").write_bytes(b"x" * 100)
    shutil.copyfile(data.big, root / "big.bin")
    shutil.copyfile(data.huge, root / "huge.bin")


def seed_s3(client: Any, data: Data) -> None:
    client.create_bucket(Bucket=BUCKET)
    names = [f"listed/l{n:05d}" for n in range(data.sizes.listed)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=b"x" * 100),
                      names))
    client.upload_file(str(data.big), BUCKET, "big.bin")
    client.upload_file(str(data.huge), BUCKET, "huge.bin")


ONLY_TOOLS: set[str] = set()  # --tools: the filesystems to run (empty: all)
SMB = True  # --no-smb: no Samba rows


def rounds(where: str, tools: list[Tool], data: Data, results: Results, runs: int) -> None:
    tools = [tool for tool in tools if not ONLY_TOOLS or tool.name in ONLY_TOOLS]
    with samba(where, tools, data) as smb:
        for number in range(runs):
            for tool in tools:
                print(f"{where}, round {number + 1}: {tool.name}", flush=True)
                one_round(where, tool, data, results, number, smb)


@contextmanager
def samba(where: str, tools: list[Tool], data: Data) -> Iterator[Smb | None]:
    """smbd with a share of each tool's folder (named before it is mounted: smbd looks
    a share's path up at each connection); None with --no-smb."""
    if not SMB:
        yield None
        return
    shares = "".join(
        f"[{where}-{tool.name}]\n   path = {tool.base(tool.point)}\n   read only = no\n"
        for tool in tools)
    server = SambaServer.create(data.work / f"smbd-{where}", shares)
    server.start()
    try:
        yield Smb(server)
    finally:
        server.stop()


def bench_local(work: Path, data: Data, results: Results, runs: int) -> None:
    source, plain = work / "local-source", work / "local-plain"
    seed_folder(source, data)
    seed_folder(plain, data)
    rounds("local", [markfs_tool(work, "local", f"file://{source}"), plain_tool(plain)],
           data, results, runs)


def bench_s3(work: Path, data: Data, results: Results, runs: int) -> None:
    (work / "seaweedfs").mkdir()
    weed = SeaweedServer(work / "seaweedfs")
    weed.start()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        seed_s3(weed.client(), data)
        url = f"s3://{BUCKET}?endpoint={weed.endpoint}&region=us-east-1"
        rounds("s3", [markfs_tool(work, "s3", url), rclone_s3_tool(work, weed.endpoint),
                      s3fs_tool(work, weed.endpoint)], data, results, runs)
    finally:
        weed.stop()


def bench_sftp(work: Path, data: Data, results: Results, runs: int) -> None:
    ssh = SshServer.create(work / "sshd")
    ssh.start()
    root = work / "sftp-root"
    try:
        seed_folder(root, data)
        rounds("sftp", [markfs_tool(work, "sftp", ssh.url(root)), sshfs_tool(work, ssh, root)],
               data, results, runs)
    finally:
        ssh.stop()


# -- the page ---------------------------------------------------------------------------------


PEERS = {"local": ["folder"], "s3": ["rclone", "s3fs"], "sftp": ["sshfs"]}


def table(results: Results, where: str) -> str:
    """Medians; each peer's cell also says how many times markfs's figure it is
    (for times: above 1 means markfs is faster; for rates, below 1)."""
    medians = results.medians()
    tools = ["markfs", *PEERS[where]]
    lines = ["| " + " | ".join(["", *tools]) + " |", "|---" * (len(tools) + 1) + "|"]
    for (place, row), by_tool in medians.items():
        if place != where:
            continue
        unit = results.units[row]
        mine = by_tool.get("markfs")
        cells = []
        for tool in tools:
            value = by_tool.get(tool)
            if value is None:
                cells.append("")
            elif tool == "markfs" or not mine:
                cells.append(f"{value:.3g} {unit}")
            else:
                cells.append(f"{value:.3g} {unit} ({value / mine:.2f}×)")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: Results, where: str, path: Path) -> None:
    """One horizontal bar per tool and row: each tool's figure over markfs's (log scale;
    right of 1 means markfs is ahead for times, behind for rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    medians = {row: by_tool for (place, row), by_tool in results.medians().items()
               if place == where and by_tool.get("markfs") and row != WRITE_BACK}
    peers = PEERS[where]
    rows = list(medians)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) * len(peers) + 1.2))
    height = 0.8 / len(peers)
    for index, peer in enumerate(peers):  # (clipped to 1/100..100; failed: no bar)
        ratios = [min(100.0, max(0.01, medians[row].get(peer, float("nan"))
                                 / medians[row]["markfs"])) for row in rows]
        ax.barh([r + index * height for r in range(len(rows))], ratios, height, label=peer)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks([r + height * (len(peers) - 1) / 2 for r in range(len(rows))], rows)
    ax.invert_yaxis()
    ax.set_xlabel("peer / markfs (times: > 1 markfs faster; creates/s: < 1 markfs faster)")
    ax.set_title(f"{where}: medians of {len(next(iter(results.figures.values()))['markfs'])} "
                 "interleaved runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(results: Results, args: argparse.Namespace) -> None:
    for kind in args.only.split(","):
        print(f"\n### {kind}\n\n{table(results, kind)}")
        if args.plot_dir:
            args.plot_dir.mkdir(parents=True, exist_ok=True)
            plot(results, kind, args.plot_dir / f"small-{kind}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="local,s3,sftp")
    parser.add_argument("--quick", action="store_true",
                        help="300 files in the tarball, 2,000 rows, 2,000 listed, 32 MiB")
    parser.add_argument("--no-smb", action="store_true", help="no Samba rows")
    parser.add_argument("--tools", default="", help="comma-separated: markfs, folder, "
                        "rclone, s3fs, sshfs (default: all)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--plot-dir", type=Path, help="write one PNG per table here")
    parser.add_argument("--from-json", type=Path,
                        help="print the tables and plots of an earlier --json, run nothing")
    args = parser.parse_args()
    if args.from_json:
        results = Results()
        for item in json.loads(args.from_json.read_text()):
            results.figures[(item["where"], item["row"])] = item["runs"]
            results.units[item["row"]] = item["unit"]
        report(results, args)
        return
    sizes = (Sizes(tar_files=300, rows=2000, transactions=20, creates=500, listed=2000,
                   big_mib=32, huge_mib=64, smb_files=100) if args.quick else Sizes())
    ONLY_TOOLS.update(filter(None, args.tools.split(",")))
    global SMB
    SMB = not args.no_smb
    results = Results()
    with tempfile.TemporaryDirectory(prefix="markfs-small-") as name:
        work = Path(name)
        data = Data(work, sizes)
        data.make()
        kinds = args.only.split(",")
        for kind, bench in (("local", bench_local), ("s3", bench_s3), ("sftp", bench_sftp)):
            if kind in kinds:
                bench(work, data, results, args.runs)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(
            [{"where": w, "row": r, "unit": results.units[r], "runs": by_tool}
             for (w, r), by_tool in results.figures.items()], indent=1))


if __name__ == "__main__":
    main()
