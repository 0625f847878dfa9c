"""Warm reads (not a test): a 256 MiB object on moto read through a mount once cold, then
three times from markfs's content cache with the kernel's page cache dropped before each.

    .venv/bin/python tools/bench/warm_read_bench.py      (as root: drop_caches)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import Mount, in_process
from remote_helpers import s3_source
from servers import S3Server, s3_env

from markfs.namespace.files.sources import add_source


def main() -> None:
    s3_env()
    server = S3Server()
    server.start()
    try:
        src = s3_source(server, "warm")
        data = os.urandom(1 << 20) * 256
        src.put("big.bin", data)
        tmp = Path(tempfile.mkdtemp())
        dd = tmp / "data"
        in_process(lambda t: add_source(t, "r", src.url, False), dd)
        (tmp / "mnt").mkdir()
        m = Mount(dd, tmp / "mnt").start()
        try:
            path = tmp / "mnt/sources/r/big.bin"
            def read() -> float:
                subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
                t = time.perf_counter()
                with open(path, "rb", buffering=0) as f:
                    while f.read(1 << 20):
                        pass
                return len(data) / (time.perf_counter() - t) / 1e6
            cold = read()
            warm = [read() for _ in range(3)]
            print(f"cold {cold:.0f} MB/s, warm {' '.join(f'{w:.0f}' for w in warm)} MB/s")
        finally:
            m.stop()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
