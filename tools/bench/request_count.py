"""FUSE requests and worker-thread hops per operation (not a test; issue 25's "count
before you optimise").

Mounts a local folder, an S3 bucket (SeaweedFS) and an SFTP folder (sshd), plays a few
common operations on N files in each and prints, per file, how many FUSE requests of
each kind reached the daemon and how many calls it handed to worker threads (and which),
read from the daemon's own counters (/.markfs/metrics) before and after each step.

    .venv/bin/python tools/bench/request_count.py [--files 200] [--only local,s3,sftp]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import Mount, in_process
from servers import SeaweedServer, SshServer, s3_env

from markfs.namespace.files.sources import add_source

_SAMPLE = re.compile(r'^markfs_(fuse_request_seconds_count|thread_hops_total)\{(\w+)="([^"]+)"\} '
                     r"([0-9.e+]+)$")


def counters(mount: Mount) -> Counter[str]:
    """FUSE requests ("fuse OP") and thread hops ("hop FN") so far."""
    out: Counter[str] = Counter()
    for line in (mount.path / ".markfs" / "metrics").read_text().splitlines():
        found = _SAMPLE.match(line)
        if found:
            kind = "fuse" if found[1].startswith("fuse") else "hop"
            out[f"{kind} {found[3]}"] += int(float(found[4]))
    return out


def per_file(mount: Mount, step: Callable[[], object], files: int) -> str:
    before = counters(mount)
    step()
    after = counters(mount)
    after.subtract(before)
    return ", ".join(f"{name} {count / files:.2f}" for name, count in sorted(after.items())
                     if count > 0)


def scenarios(mount: Mount, folder: Path, files: int, ttl: float) -> None:
    names = [folder / f"f{number:05d}" for number in range(files)]

    def create() -> None:
        for path in names:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))

    def write() -> None:
        for path in names:
            with open(path, "wb") as f:
                f.write(b"x" * 65536)

    def stat_expired() -> None:
        time.sleep(ttl + 0.2)
        for path in names:
            os.stat(path)

    def stat_cached() -> None:
        for path in names:
            os.stat(path)

    def list_long() -> None:
        time.sleep(ttl + 0.2)
        subprocess.run(["ls", "-l", str(folder)], stdout=subprocess.DEVNULL, check=True)

    def rename() -> None:
        for path in names:
            os.rename(path, path.with_name(path.name + ".r"))

    def unlink() -> None:
        for path in names:
            os.unlink(path.with_name(path.name + ".r"))

    for label, step in (("create (open O_CREAT, close)", create),
                        ("write 64 KiB (open O_TRUNC, write, close)", write),
                        ("stat after the kernel's timeout", stat_expired),
                        ("stat again at once", stat_cached),
                        ("ls -l after the kernel's timeout", list_long),
                        ("rename", rename), ("unlink", unlink)):
        print(f"  {label:<42} {per_file(mount, step, files)}", flush=True)


def measure(tmp: Path, name: str, url: str, files: int, ttl: float) -> None:
    """The scenarios on a mount of one source (`url`), printed under `name`."""
    slug = name.split()[0].lower()
    in_process(lambda tree: add_source(tree, "src", url, False), tmp / f"data-{slug}")
    (tmp / f"mnt-{slug}").mkdir()
    mount = Mount(tmp / f"data-{slug}", tmp / f"mnt-{slug}").start()
    try:
        print(f"{name}, per file:")
        scenarios(mount, mount.path / "sources" / "src", files, ttl)
    finally:
        mount.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--only", default="local,s3,sftp")
    args = parser.parse_args()
    ttl = 1.0  # entry_ttl and attr_ttl, their defaults
    with tempfile.TemporaryDirectory(prefix="markfs-requests-") as tmp_name:
        tmp = Path(tmp_name)
        kinds = args.only.split(",")
        if "local" in kinds:
            (tmp / "local").mkdir()
            measure(tmp, "local source", f"file://{tmp / 'local'}", args.files, ttl)
        if "s3" in kinds:
            s3_env()
            (tmp / "seaweed").mkdir()
            weed = SeaweedServer(tmp / "seaweed")
            weed.start()
            try:
                weed.client().create_bucket(Bucket="requests")  # type: ignore[attr-defined]
                measure(tmp, "S3 (SeaweedFS)", weed.url("requests"), args.files, ttl)
            finally:
                weed.stop()
        if "sftp" in kinds:
            ssh = SshServer.create(tmp / "sshd")
            ssh.start()
            try:
                (tmp / "sftp-root").mkdir()
                measure(tmp, "SFTP", ssh.url(tmp / "sftp-root"), args.files, ttl)
            finally:
                ssh.stop()


if __name__ == "__main__":
    main()
