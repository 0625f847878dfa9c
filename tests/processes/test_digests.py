"""Whole-file digests taken on the way (issue 11, part 5): a remote file uploaded whole
through markfs, or read through a handle from its first byte to its last, has its
xxh3-128 recorded under the content identity a listing of the source shows, so
`markfs dupes` does not read it again. In process, against moto and sshd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import xxhash
from conftest import add_source_now
from harness import ROOT, InProcess, read_all, resolve
from remote_helpers import source_for

from markfs.namespace.ops import Namespace


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


async def uploads_drained(ns: Namespace) -> None:
    with trio.fail_after(30):
        while ns.remote.uploader.pending()[0]:
            await trio.sleep(0.05)


def test_a_file_uploaded_whole_has_its_digest_recorded(
        remote: tuple[InProcess, object]) -> None:
    inprocess, _source = remote
    data = os.urandom(300_000)

    async def body(ns: Namespace) -> str | None:
        parent = await resolve(ns, "/sources/r")
        fh, _node = await ns.create(parent.id, b"new.bin", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, data)
        await ns.release(fh)
        await uploads_drained(ns)
        return recorded(ns, "new.bin")
    assert inprocess.run(body) == xxhash.xxh3_128_hexdigest(data)


def test_a_file_read_to_its_end_has_its_digest_recorded(
        remote: tuple[InProcess, object]) -> None:
    inprocess, _source = remote

    async def body(ns: Namespace) -> str | None:
        await read_all(ns, await resolve(ns, "/sources/r/there.bin"))
        return recorded(ns, "there.bin")
    assert inprocess.run(body) == xxhash.xxh3_128_hexdigest(b"listed, then read" * 1000)


def test_a_file_read_in_part_records_nothing(remote: tuple[InProcess, object]) -> None:
    inprocess, _source = remote

    async def body(ns: Namespace) -> str | None:
        node = await resolve(ns, "/sources/r/there.bin")
        fh, _direct = await ns.open(node.id, os.O_RDONLY)
        await ns.read(fh, 0, 1000)
        await ns.read(fh, 5000, 1000)
        await ns.release(fh)
        return recorded(ns, "there.bin")
    assert inprocess.run(body) is None


def test_a_file_replaced_on_the_server_while_read_records_nothing(
        remote: tuple[InProcess, object]) -> None:
    inprocess, source = remote

    async def body(ns: Namespace) -> str | None:
        node = await resolve(ns, "/sources/r/there.bin")
        fh, _direct = await ns.open(node.id, os.O_RDONLY)
        await ns.read(fh, 0, 1000)
        # another size: on SFTP the identity is size and mtime, and mtime has seconds only
        source.put("there.bin", b"Q" * 30_000)  # type: ignore[attr-defined]
        await ns.read(fh, 1000, 30_000)
        await ns.release(fh)
        return recorded(ns, "there.bin")
    assert inprocess.run(body) is None


def test_a_file_still_open_for_writing_when_its_upload_ends_records_nothing(
        remote: tuple[InProcess, object]) -> None:
    inprocess, _source = remote

    async def body(ns: Namespace) -> str | None:
        parent = await resolve(ns, "/sources/r")
        fh, _node = await ns.create(parent.id, b"busy.bin", 0o644, os.O_RDWR, ROOT)
        await ns.write(fh, 0, b"first bytes")
        await ns.fsync(fh, False)  # journaled and uploaded while the handle stays open
        await ns.write(fh, 0, b"FIRST")
        digest = recorded(ns, "busy.bin")
        await ns.release(fh)
        return digest
    assert inprocess.run(body) is None


