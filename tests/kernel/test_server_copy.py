"""`markfs cp`: a file copied inside its storage (S3 CopyObject on moto and SeaweedFS,
SFTP copy-data on sshd, copy_file_range in a local folder), shown by a running mount at
once, and every refusal a one-line error that changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Mount, add_source_now, run_markfs
from remote_helpers import RemoteSource, mount_remote, s3_source, source_for


def local_source(tmp_path: Path) -> RemoteSource:
    root = tmp_path / "local-root"
    root.mkdir()

    def put(path: str, data: bytes) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    def get(path: str) -> bytes | None:
        return (root / path).read_bytes() if (root / path).is_file() else None

    def names() -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    return RemoteSource("local", f"file://{root}", put, get, names)


@pytest.fixture(params=["local", "s3", "seaweedfs", "sftp"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return local_source(tmp_path) if request.param == "local" else source_for(request, tmp_path)


@pytest.fixture
def mounted(tmp_path: Path, data_dir: Path, source: RemoteSource) -> Mount:
    mount = mount_remote(tmp_path, data_dir, source)
    yield mount  # type: ignore[misc]
    mount.stop()


def cp(data_dir: Path, *paths: str, check: bool = True) -> str:
    done = run_markfs(data_dir, "cp", *paths, check=check)
    if not check:
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        return done.stderr
    return done.stdout


def test_a_copy_is_made_on_the_server_and_shown_by_the_mount_at_once(
        source: RemoteSource, mounted: Mount, data_dir: Path) -> None:
    data = os.urandom((12 << 20) + 5)
    source.put("in/big.bin", data)
    folder = mounted.path / "sources" / "r" / "in"
    assert os.listdir(folder) == ["big.bin"]
    out = cp(data_dir, "/sources/r/in/big.bin", "/sources/r/in/copy.bin")
    assert "/sources/r/in/copy.bin" in out
    assert source.get("in/copy.bin") == data
    assert (folder / "copy.bin").read_bytes() == data
    assert not [n for n in source.names() if ".markfs-" in n]  # no temporary file left


def test_a_copy_into_a_folder_keeps_its_name(source: RemoteSource, data_dir: Path) -> None:
    source.put("a.txt", b"alpha")
    source.put("sub/keep", b"")
    add_source_now(data_dir, "r", source.url)
    cp(data_dir, "/sources/r/a.txt", "/sources/r/sub")
    assert source.get("sub/a.txt") == b"alpha"


def test_an_existing_destination_is_refused_and_left_as_it_was(
        source: RemoteSource, data_dir: Path) -> None:
    source.put("a.txt", b"alpha")
    source.put("b.txt", b"beta")
    add_source_now(data_dir, "r", source.url)
    error = cp(data_dir, "/sources/r/a.txt", "/sources/r/b.txt", check=False)
    assert "exists" in error and source.get("b.txt") == b"beta"


def test_a_folder_or_a_missing_file_is_refused(source: RemoteSource, data_dir: Path) -> None:
    source.put("sub/x", b"x")
    add_source_now(data_dir, "r", source.url)
    assert "not a file" in cp(data_dir, "/sources/r/sub", "/sources/r/other", check=False)
    assert "no such path" in cp(data_dir, "/sources/r/nothing", "/sources/r/o", check=False)


def test_a_copy_between_buckets_of_one_endpoint_is_made_there(
        request: pytest.FixtureRequest, data_dir: Path) -> None:
    server = request.getfixturevalue("seaweed")
    first, second = (s3_source(server, f"copy-{os.getpid()}-{n}") for n in ("one", "two"))
    first.put("a.bin", b"across buckets")
    add_source_now(data_dir, "one", first.url)
    add_source_now(data_dir, "two", second.url)
    cp(data_dir, "/sources/one/a.bin", "/sources/two/a.bin")
    assert second.get("a.bin") == b"across buckets"


def test_a_copy_between_storages_of_different_kinds_says_to_use_cp(
        request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path) -> None:
    remote = s3_source(request.getfixturevalue("s3"), f"kinds-{os.getpid()}")
    local = local_source(tmp_path)
    local.put("a.txt", b"alpha")
    add_source_now(data_dir, "loc", local.url)
    add_source_now(data_dir, "s3", remote.url)
    error = cp(data_dir, "/sources/loc/a.txt", "/sources/s3/a.txt", check=False)
    assert "use cp" in error and remote.get("a.txt") is None


def test_a_read_only_source_is_not_copied_into(tmp_path: Path, data_dir: Path) -> None:
    local = local_source(tmp_path)
    local.put("a.txt", b"alpha")
    add_source_now(data_dir, "ro", local.url, read_only=True)
    assert "read-only" in cp(data_dir, "/sources/ro/a.txt", "/sources/ro/b.txt", check=False)
    assert local.get("b.txt") is None


def test_an_object_above_the_copy_object_limit_is_copied_in_parts_on_the_server(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """(S3 takes one CopyObject up to 5 GiB: the limit is lowered to prove the parts path.)"""
    from markfs.backends import s3, s3objects
    from markfs.namespace.files.urls import parse_source_url

    monkeypatch.setattr(s3objects, "COPY_OBJECT_MAX", 1 << 20)
    monkeypatch.setattr(s3objects, "COPY_PART", 5 << 20)  # S3's smallest part
    remote = s3_source(request.getfixturevalue("seaweed"), f"parts-{os.getpid()}")
    data = os.urandom((12 << 20) + 3)
    remote.put("big.bin", data)
    location = parse_source_url(remote.url).location
    assert isinstance(location, s3.S3Location)
    backend = s3.S3Backend(location)
    copied = backend.copy_file(backend, b"big.bin", b"copy.bin")
    assert copied.size == len(data) and b"-3" in (copied.etag or b"")  # three parts
    assert remote.get("copy.bin") == data
