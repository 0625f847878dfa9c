"""What verifying content-cache blobs costs (issue 9): reads of cached 8 MiB chunks
on their first use in a process (each blob hashed whole with xxh3-128) against
reads of blobs already verified, and xxh3-128 alone. Prints a Markdown table."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import xxhash

from markfs.cache.content import CHUNK_SIZE, ContentCache, chunk_name

READ = 128 * 1024  # what the kernel asks for at a time


def read_all(cache: ContentCache, names: list[bytes]) -> float:
    started = time.perf_counter()
    for name in names:
        for offset in range(0, CHUNK_SIZE, READ):
            assert cache.read(name, offset, READ) is not None
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=64, help="8 MiB chunks (default 64)")
    args = parser.parse_args()
    total = args.chunks * CHUNK_SIZE
    with tempfile.TemporaryDirectory() as tmp:
        cache = ContentCache(Path(tmp), max_bytes=total * 2)
        names = [chunk_name(1, b"bench", b"etag", i) for i in range(args.chunks)]
        for name in names:
            cache.put(name, os.urandom(CHUNK_SIZE))
        cache.close()
        first = ContentCache(Path(tmp), max_bytes=total * 2)  # a new process: nothing verified
        cold = read_all(first, names)
        warm = read_all(first, names)
        data = os.urandom(CHUNK_SIZE)
        started = time.perf_counter()
        for _ in range(args.chunks):
            xxhash.xxh3_128_digest(data)
        hashing = time.perf_counter() - started
    mib = total / 2**20
    print(f"{args.chunks} chunks of 8 MiB ({mib:.0f} MiB), read {READ // 1024} KiB at a time\n")
    print("| reads of cached chunks | seconds | MiB/s |\n|---|---|---|")
    for label, seconds in (("first use in a process (verified)", cold),
                           ("already verified", warm), ("xxh3-128 alone", hashing)):
        print(f"| {label} | {seconds:.3f} | {mib / seconds:,.0f} |")


if __name__ == "__main__":
    main()
