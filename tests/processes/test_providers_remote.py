"""The providers over real servers, driven in process (no kernel): S3 and SFTP files
cached and staged against moto and sshd, managed table files, a rename between
sources."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from conftest import add_source_now, run_markfs
from harness import ROOT, InProcess, errno, errno_of, names, read_all, resolve
from remote_helpers import s3_source, sftp_source, source_for

from markfs.namespace.ops import Namespace

# -- local files, in place -------------------------------------------------------------


def test_a_rename_between_sources_is_exdev(local: InProcess, tmp_path: Path,
                                           data_dir: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    run_markfs(data_dir, "source", "add", "other", f"file://{other}")

    async def body(ns: Namespace) -> int:
        loc, dest = await resolve(ns, "/sources/loc"), await resolve(ns, "/sources/other")
        return await errno_of(ns.rename(loc.id, b"a.txt", dest.id, b"a.txt", 0))
    assert local.run(body) == errno.EXDEV


# -- S3 files, cached and staged -------------------------------------------------------

@pytest.fixture(params=["s3", "sftp"])
def on_s3(data_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[
        tuple[InProcess, object]]:
    """A remote source (S3 on moto, or SFTP on sshd) read and written in process."""
    source = source_for(request, tmp_path)
    source.put("old.txt", b"first version")
    add_source_now(data_dir, "r", source.url)
    inprocess = InProcess(data_dir)
    yield inprocess, source
    inprocess.close()


def test_an_s3_file_written_is_on_the_server_after_fsync(on_s3: tuple[InProcess, object]) -> None:
    inprocess, source = on_s3

    async def body(ns: Namespace) -> None:
        parent = await resolve(ns, "/sources/r")
        fh, _node = await ns.create(parent.id, b"new.bin", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, b"x" * 100_000)
        await ns.fsync(fh, False)
        await ns.release(fh)
    inprocess.run(body)
    assert source.get("new.bin") == b"x" * 100_000  # type: ignore[attr-defined]


def test_a_write_released_without_a_flush_still_reaches_the_server(
        on_s3: tuple[InProcess, object]) -> None:
    """The kernel may send RELEASE with no FLUSH after the last write (pages of an
    mmap written back at munmap): the staged copy is journaled, not thrown away."""
    inprocess, source = on_s3

    async def body(ns: Namespace) -> None:
        parent = await resolve(ns, "/sources/r")
        fh, _node = await ns.create(parent.id, b"late.bin", 0o644, os.O_WRONLY, ROOT)
        await ns.write(fh, 0, b"written, never flushed")
        await ns.release(fh)
        with trio.fail_after(30):
            while ns.remote.uploader.pending()[0]:
                await trio.sleep(0.05)
    inprocess.run(body)
    assert source.get("late.bin") == b"written, never flushed"  # type: ignore[attr-defined]


def test_fifos_sockets_and_devices_are_eperm_on_remote_sources(
        on_s3: tuple[InProcess, object]) -> None:
    inprocess, _source = on_s3

    async def body(ns: Namespace) -> list[int]:
        parent = await resolve(ns, "/sources/r")
        return [await errno_of(ns.mknod(parent.id, b"special", kind | 0o644, ROOT))
                for kind in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR)]
    assert inprocess.run(body) == [errno.EPERM, errno.EPERM, errno.EPERM]


def test_an_s3_key_that_is_also_a_folder_shows_the_folder(
        data_dir: Path, request: pytest.FixtureRequest) -> None:
    source = s3_source(request.getfixturevalue("s3"), f"twins-{os.getpid()}")
    source.put("both", b"the file")
    source.put("both/inner.txt", b"inside")
    add_source_now(data_dir, "r", source.url)
    inprocess = InProcess(data_dir)

    async def body(ns: Namespace) -> tuple[list[bytes], bytes]:
        inner = await resolve(ns, "/sources/r/both/inner.txt")
        return await names(ns, "/sources/r"), await read_all(ns, inner)
    try:
        assert inprocess.run(body) == ([b"both"], b"inside")
    finally:
        inprocess.close()


def test_a_path_past_s3s_1024_byte_keys_is_enametoolong(
        data_dir: Path, request: pytest.FixtureRequest) -> None:
    source = s3_source(request.getfixturevalue("s3"), f"long-keys-{os.getpid()}")
    add_source_now(data_dir, "r", source.url)
    inprocess = InProcess(data_dir)
    name = b"k" * 250

    async def body(ns: Namespace) -> list[int]:
        folder = await resolve(ns, "/sources/r")
        for _ in range(4):  # "data/" + 4 x 251 bytes: 1,009; 15 bytes left
            folder = await ns.mkdir(folder.id, name, 0o755, ROOT)
        fits = b"f" * 15
        fh, _node = await ns.create(folder.id, fits, 0o644, os.O_WRONLY | os.O_CREAT, ROOT)
        await ns.flush(fh)
        await ns.fsync(fh, False)  # on S3 before the body ends (and the uploader with it)
        await ns.release(fh)
        return [await errno_of(ns.create(folder.id, fits + b"!", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.mkdir(folder.id, fits, 0o755, ROOT))]  # (its marker: +"/")
    try:
        assert inprocess.run(body) == [errno.ENAMETOOLONG, errno.ENAMETOOLONG]
        assert ("k" * 250 + "/") * 4 + "f" * 15 in source.names()
    finally:
        inprocess.close()


def test_a_rename_onto_a_non_empty_folder_or_a_name_of_the_other_kind_is_refused(
        on_s3: tuple[InProcess, object]) -> None:
    inprocess, source = on_s3
    for name in ("full/x", "moving/y", "file"):
        source.put(name, name.encode())  # type: ignore[attr-defined]
    before = source.names()  # type: ignore[attr-defined]

    async def body(ns: Namespace) -> list[int]:
        root = (await resolve(ns, "/sources/r")).id
        return [await errno_of(ns.rename(root, b"moving", root, b"full", 0)),
                await errno_of(ns.rename(root, b"moving", root, b"file", 0)),
                await errno_of(ns.rename(root, b"file", root, b"full", 0))]
    assert inprocess.run(body) == [errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR]
    assert source.names() == before  # type: ignore[attr-defined]


def test_an_sftp_file_is_uploaded_with_the_mode_and_time_it_was_made_or_given(
        data_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source = sftp_source(request.getfixturevalue("sshd"), tmp_path / "sftp-modes")
    add_source_now(data_dir, "r", source.url)
    inprocess = InProcess(data_dir)

    async def body(ns: Namespace) -> None:
        root = await resolve(ns, "/sources/r")
        for name, mode in ((b"private", 0o600), (b"script", 0o644)):
            fh, node = await ns.create(root.id, name, mode, os.O_WRONLY | os.O_CREAT, ROOT)
            await ns.write(fh, 0, b"#!/bin/sh\n")
            if name == b"script":  # before its upload (the file is not on the server yet)
                await ns.setattr(node.id, mode=stat.S_IFREG | 0o755)
                await ns.setattr(node.id, atime_ns=10**18, mtime_ns=1_500_000_000 * 10**9)
            await ns.release(fh)
        with trio.fail_after(30):
            while ns.remote.uploader.pending()[0]:
                await trio.sleep(0.05)
    try:
        inprocess.run(body)
    finally:
        inprocess.close()
    modes = {n: stat.S_IMODE(os.stat(tmp_path / "sftp-modes" / n).st_mode)
             for n in ("private", "script")}
    assert modes == {"private": 0o600, "script": 0o755}
    assert os.stat(tmp_path / "sftp-modes" / "script").st_mtime == 1_500_000_000


def test_an_s3_object_replaced_after_listing_is_read_in_its_new_version(
        on_s3: tuple[InProcess, object]) -> None:
    inprocess, source = on_s3

    async def body(ns: Namespace) -> bytes:
        node = await resolve(ns, "/sources/r/old.txt")
        source.put("old.txt", b"SECOND version")  # type: ignore[attr-defined]
        fh, _direct = await ns.open(node.id, os.O_RDONLY)
        try:
            return await ns.read(fh, 0, 100)
        finally:
            await ns.release(fh)
    assert inprocess.run(body) == b"SECOND version"


def test_an_s3_file_open_for_writing_reads_its_own_staged_bytes(
        on_s3: tuple[InProcess, object]) -> None:
    inprocess, _source = on_s3

    async def body(ns: Namespace) -> tuple[bytes, int]:
        node = await resolve(ns, "/sources/r/old.txt")
        fh, _direct = await ns.open(node.id, os.O_RDWR)
        await ns.write(fh, 0, b"FIRST")
        data = await ns.read(fh, 0, 100)
        size = ns.node(node.id).size
        await ns.release(fh)
        return data, size
    assert inprocess.run(body) == (b"FIRST version", 13)


# -- managed table files -----------------------------------------------------------------

@pytest.fixture
def with_table(data_dir: Path, tmp_path: Path) -> Iterator[InProcess]:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in range(10)])
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "manage", "shop/main/orders")
    inprocess = InProcess(data_dir)
    yield inprocess
    inprocess.close()


def test_a_table_file_reads_its_snapshot_and_describes_itself(with_table: InProcess) -> None:
    async def body(ns: Namespace) -> tuple[bytes, bytes]:
        node = await resolve(ns, "/tables/shop/main/orders/data.csv")
        return await read_all(ns, node), await ns.getxattr(node.id, b"user.markfs.rows")
    data, rows = with_table.run(body)
    assert data.splitlines()[0] == b'"id","total"' and len(data.splitlines()) == 11
    assert rows == b"10"


def test_table_files_refuse_every_change(with_table: InProcess) -> None:
    async def body(ns: Namespace) -> list[int]:
        folder = await resolve(ns, "/tables/shop/main/orders")
        csv = await resolve(ns, "/tables/shop/main/orders/data.csv")
        return [await errno_of(ns.open(csv.id, os.O_WRONLY)),
                await errno_of(ns.unlink(folder.id, b"data.csv")),
                await errno_of(ns.create(folder.id, b"x", 0o644, os.O_WRONLY, ROOT)),
                await errno_of(ns.setattr(csv.id, size=0)),
                await errno_of(ns.rename(folder.id, b"data.csv", folder.id, b"d.csv", 0))]
    assert with_table.run(body) == [errno.EROFS] * 5


def test_a_remote_file_changed_since_listing_is_opened_for_writing_in_its_new_version(
        on_s3: tuple[InProcess, object]) -> None:
    inprocess, source = on_s3

    async def body(ns: Namespace) -> None:
        node = await resolve(ns, "/sources/r/old.txt")
        source.put("old.txt", b"SECOND version, longer")  # type: ignore[attr-defined]
        fh, _direct = await ns.open(node.id, os.O_RDWR)
        await ns.write(fh, 0, b"THIRD ")
        await ns.fsync(fh, False)
        await ns.release(fh)
    inprocess.run(body)
    assert source.get("old.txt") == b"THIRD  version, longer"  # type: ignore[attr-defined]


def test_a_cached_chunk_damaged_in_place_while_open_is_fetched_again(
        on_s3: tuple[InProcess, object], data_dir: Path) -> None:
    inprocess, source = on_s3
    data = os.urandom(300_000)
    source.put("big.bin", data)  # type: ignore[attr-defined]

    async def body(ns: Namespace) -> tuple[bytes, bytes]:
        node = await resolve(ns, "/sources/r/big.bin")
        first = await read_all(ns, node)  # the chunk's descriptor stays open
        await trio.sleep(0.05)  # (a change within the file system's time tick is unseen)
        (blob,) = [p for p in (data_dir / "cache" / "blobs").rglob("*") if p.is_file()]
        with open(blob, "r+b") as f:  # the same file, changed in place
            f.seek(1000)
            f.write(b"\xff" * 64)
        return first, await read_all(ns, node)
    first, again = inprocess.run(body)
    assert first == data and again == data
