"""A symlink on SFTP is never followed by an attribute change (issue 23, part 6):
`tar -xf` sets the owner and times of the links it makes (lchown, lutimes), which
markfs sends as OpenSSH's `lsetstat@openssh.com`; a plain SETSTAT would change the
link's target instead — a file anywhere the server's user may write."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mount
from remote_helpers import mount_remote, sftp_source
from servers import SshServer

OLD, NEW = 1_104_537_600, 978_307_200  # 2005-01-01, 2001-01-01


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A file outside the source's tree, root's, from 2005."""
    path = tmp_path / "outside" / "sentinel"
    path.parent.mkdir()
    path.write_text("leave me alone")
    os.utime(path, (OLD, OLD))
    return path


@pytest.fixture
def mounted(tmp_path: Path, data_dir: Path, sshd: SshServer) -> Iterator[tuple[Path, Path]]:
    """(the source's folder in the mount, the same folder on the server)."""
    remote = sftp_source(sshd, tmp_path / "sftp-root")
    mount: Mount
    for mount in mount_remote(tmp_path, data_dir, remote).checked():
        yield mount.path / "sources" / "r", tmp_path / "sftp-root"


def archive_with_links_to(target: Path, tree: Path) -> bytes:
    """A tar whose links (absolute, and relative from where `tree` will be) point at
    `target`, owned by 4242 and dated 2001, as `tar -xf` run by root restores them."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, points_to in (("tree/abs-link", str(target)),
                                ("tree/rel-link", os.path.relpath(target, tree))):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            info.uid = info.gid = 4242
            info.mtime = NEW
            tar.addfile(info)
    return data.getvalue()


def test_tar_of_links_to_a_file_outside_never_changes_that_file(
        tmp_path: Path, mounted: tuple[Path, Path], sentinel: Path) -> None:
    folder, on_server = mounted
    archive = tmp_path / "links.tar"
    archive.write_bytes(archive_with_links_to(sentinel, on_server / "tree"))
    done = subprocess.run(["tar", "-xf", str(archive), "-C", str(folder)],
                          capture_output=True, text=True, check=False)
    before = sentinel.stat()
    assert (before.st_uid, int(before.st_mtime)) == (0, OLD), done.stderr
    for name in ("abs-link", "rel-link"):  # the links' own attributes did move
        link = os.lstat(on_server / "tree" / name)
        assert (link.st_uid, int(link.st_mtime)) == (4242, NEW), done.stderr
    assert done.returncode == 0, done.stderr


def test_a_link_whose_target_is_inside_keeps_the_target_as_it_was(
        mounted: tuple[Path, Path]) -> None:
    folder, on_server = mounted
    (folder / "real").write_text("real")
    os.symlink("real", folder / "link")
    os.utime(folder / "real", (OLD, OLD))
    os.utime(folder / "link", (NEW, NEW), follow_symlinks=False)
    os.lchown(folder / "link", 4242, 4242)
    with open(folder / "real", "rb") as written:
        os.fsync(written.fileno())  # (its upload waits upload_delay otherwise)
    real = os.stat(on_server / "real")
    assert (real.st_uid, int(real.st_mtime)) == (0, OLD)
    assert int(os.lstat(on_server / "link").st_mtime) == NEW


def test_a_server_without_lsetstat_gets_eperm_for_a_link_and_its_target_is_untouched(
        tmp_path: Path, sshd: SshServer, sentinel: Path) -> None:
    """In process: the same calls on a session that does not offer the extension."""
    from remote_helpers import sftp_location

    from markfs.backends.sftp import SftpBackend
    from markfs.backends.sftp_packets import LSETSTAT

    root = tmp_path / "files"
    root.mkdir()
    os.symlink(sentinel, root / "link")
    (root / "plain").write_text("plain")
    backend = SftpBackend(sftp_location(sshd, root), timeout=10)
    try:
        with backend.sessions.session() as session:
            del session.extensions[LSETSTAT]
        for call in (lambda: backend.chown(b"link", 4242, 4242),
                     lambda: backend.utime(b"link", NEW * 10**9, NEW * 10**9)):
            with pytest.raises(OSError) as refused:
                call()
            assert refused.value.errno == errno.EPERM
        backend.utime(b"plain", NEW * 10**9, NEW * 10**9)  # not a link: a plain SETSTAT
    finally:
        backend.close()
    assert (sentinel.stat().st_uid, int(sentinel.stat().st_mtime)) == (0, OLD)
    assert int((root / "plain").stat().st_mtime) == NEW
