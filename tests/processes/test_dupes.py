"""`markfs dupes`: identical files found across a local folder, S3 and SFTP; only
files sharing a size are read, a recorded digest is used while the file's identity
holds and a changed file is read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import add_source_now, run_markfs
from remote_helpers import s3_source, sftp_source
from servers import S3Server, SshServer


def dupes(data_dir: Path, *sources: str) -> str:
    return run_markfs(data_dir, "dupes", *sources).stdout


@pytest.fixture
def three(s3: S3Server, sshd: SshServer, tmp_path: Path, data_dir: Path) -> dict[str, object]:
    """A local folder, an S3 bucket and an SFTP folder, as the sources loc, s3 and ssh."""
    local = tmp_path / "local"
    local.mkdir()
    bucket = s3_source(s3, f"dupes-{os.getpid()}-{os.urandom(3).hex()}")
    ssh = sftp_source(sshd, tmp_path / "ssh")
    add_source_now(data_dir, "loc", f"file://{local}")
    add_source_now(data_dir, "s3", bucket.url)
    add_source_now(data_dir, "ssh", ssh.url)
    return {"local": local, "s3": bucket, "ssh": ssh}


def test_identical_files_are_grouped_across_sources(
        three: dict[str, object], data_dir: Path) -> None:
    same, other = os.urandom(3000), os.urandom(3000)  # one size, two contents
    local: Path = three["local"]  # type: ignore[assignment]
    (local / "a").mkdir()
    (local / "a" / "x.bin").write_bytes(same)
    (local / "other.bin").write_bytes(other)
    three["s3"].put("deep/y.bin", same)  # type: ignore[attr-defined]
    three["ssh"].put("z.bin", same)  # type: ignore[attr-defined]
    out = dupes(data_dir)
    assert "3 identical files of 3000 bytes" in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert listed == ["/sources/loc/a/x.bin", "/sources/s3/deep/y.bin", "/sources/ssh/z.bin"]
    assert "other.bin" not in out and "1 groups; 6000 bytes" in out


def test_only_the_named_sources_are_compared(three: dict[str, object], data_dir: Path) -> None:
    local: Path = three["local"]  # type: ignore[assignment]
    (local / "x.bin").write_bytes(b"twins")
    three["s3"].put("y.bin", b"twins")  # type: ignore[attr-defined]
    assert "no identical files" in dupes(data_dir, "loc", "ssh")
    assert "2 identical files" in dupes(data_dir, "loc", "s3")


def test_a_recorded_digest_serves_while_the_file_is_unchanged_and_not_after(
        three: dict[str, object], data_dir: Path) -> None:
    from markfs.catalog.db import Catalog

    local: Path = three["local"]  # type: ignore[assignment]
    (local / "x.bin").write_bytes(b"same bytes")
    (local / "y.bin").write_bytes(b"same bytes")
    assert "2 identical files" in dupes(data_dir, "loc")
    catalog = Catalog(data_dir / "catalog.db")
    with catalog.transaction() as txn:  # a digest that was never of these bytes
        txn.execute("UPDATE content_hashes SET digest = 'f00d' WHERE remote_path = ?", (b"x.bin",))
    catalog.close()
    assert "no identical files" in dupes(data_dir, "loc")  # recorded digests: not read again
    (local / "x.bin").write_bytes(b"same bytes")  # rewritten: a new mtime, a new identity
    os.utime(local / "x.bin", ns=(1, 1))
    assert "2 identical files" in dupes(data_dir, "loc")  # read again


def test_an_unknown_source_is_a_one_line_error(data_dir: Path) -> None:
    done = run_markfs(data_dir, "dupes", "nowhere", check=False)
    assert done.returncode == 1 and "no file source named 'nowhere'" in done.stderr
    assert "Traceback" not in done.stderr
