"""Whole-file digests taken on the way (issue 11, part 5): a remote file uploaded whole
through markfs, or read through a handle from its first byte to its last, has its
xxh3-128 recorded under the content identity a listing of the source shows, so
`markfs dupes` does not read it again. In process, against moto and sshd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash
from conftest import add_source_now
from harness import InProcess
from remote_helpers import source_for

from markfs.namespace.ops import Namespace
from markfs.namespace.remote.digests import ReadDigest


@pytest.fixture(params=["s3", "sftp"])
def remote(data_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[
        tuple[InProcess, object]]:
    source = source_for(request, tmp_path)
    source.put("there.bin", b"listed, then read" * 1000)
    add_source_now(data_dir, "r", source.url)
    inprocess = InProcess(data_dir)
    yield inprocess, source
    inprocess.close()


def recorded(ns: Namespace, name: str) -> str | None:
    """The digest recorded for a file of source r under the identity its server shows."""
    node = ns.tree.node_at(1, name.encode())
    assert node is not None and node.source_id is not None
    backend = ns.sources.backend(node.source_id)
    assert backend is not None
    entry = backend.stat(name.encode())
    return ns.tree.recorded_digest(node.source_id, name.encode(), entry.identity)


def test_reads_answered_out_of_order_still_give_the_digest() -> None:
    data = os.urandom(1 << 20)
    digest = ReadDigest()
    for offset in (0, 262144, 131072, 524288, 393216, 655360, 786432, 917504):
        digest.feed(offset, data[offset:offset + 131072])
    digest.feed(0, data[:4096])  # a page read again
    assert digest.hexdigest(len(data)) == xxhash.xxh3_128_hexdigest(data)


def test_a_read_that_skips_ahead_gives_no_digest() -> None:
    digest = ReadDigest()
    digest.feed(0, b"a" * 100)
    digest.feed(200, b"c" * 100)
    assert digest.hexdigest(300) is None
