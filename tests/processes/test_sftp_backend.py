"""The SFTP backend without the kernel, against a real sshd: what ssh is asked to do
(host keys, keys, no option smuggled in a host name), the errors a user reads, exact
bytes through the read and write pipelines, and sessions that outlive a broken one."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from remote_helpers import sftp_location
from servers import SshServer

from markfs.backends.base import UploadControl
from markfs.backends.sftp import SftpBackend


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "files").mkdir()
    return tmp_path / "files"


@pytest.fixture
def backend(sshd: SshServer, root: Path) -> Iterator[SftpBackend]:
    opened = SftpBackend(sftp_location(sshd, root), timeout=10)
    try:
        yield opened
    finally:
        opened.close()


def new_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def failure_of(backend: SftpBackend) -> OSError:
    with pytest.raises(OSError) as raised:
        backend.check()
    backend.close()
    return raised.value


def test_a_host_key_other_than_the_known_one_is_refused(
        sshd: SshServer, root: Path, tmp_path: Path) -> None:
    impostor = tmp_path / "known_hosts"
    other_key = new_key(tmp_path / "other").with_suffix(".pub").read_text().split()[:2]
    impostor.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other_key)}\n")
    error = failure_of(SftpBackend(replace(sftp_location(sshd, root), known_hosts=str(impostor))))
    assert error.errno == errno.EACCES
    assert "does not match known_hosts" in str(error) and "\n" not in str(error)


def test_an_unknown_host_is_refused_unless_trusted_on_first_use(
        sshd: SshServer, root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = failure_of(SftpBackend(replace(sftp_location(sshd, root), known_hosts=str(empty))))
    assert refused.errno == errno.EACCES and "unknown host key" in str(refused)
    trusting = SftpBackend(replace(sftp_location(sshd, root), known_hosts=str(empty),
                                   accept_unknown_host=True))
    assert "directory" in trusting.check()
    trusting.close()
    host_key = sshd.known_hosts.read_text().split()[2]
    assert host_key in empty.read_text()  # remembered from now on


def test_a_key_the_server_does_not_accept_is_an_authentication_error(
        sshd: SshServer, root: Path, tmp_path: Path) -> None:
    stranger = new_key(tmp_path / "stranger")
    error = failure_of(SftpBackend(replace(sftp_location(sshd, root), key_file=str(stranger))))
    assert error.errno == errno.EACCES and "authentication to 127.0.0.1 failed" in str(error)


def test_a_host_name_cannot_pass_for_an_ssh_option(
        sshd: SshServer, root: Path, tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    sly = replace(sftp_location(sshd, root), host=f"-oProxyCommand=touch {witness}")
    error = failure_of(SftpBackend(sly, timeout=5))
    assert error.errno == errno.EIO and not witness.exists()


def test_without_ssh_the_error_says_what_to_install(
        sshd: SshServer, root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    error = failure_of(SftpBackend(sftp_location(sshd, root)))
    assert "need the OpenSSH client" in str(error)


@pytest.mark.parametrize("offset,size", [(0, 5 << 20), (12345, 3 << 20), ((5 << 20) - 7, 100),
                                         ((6 << 20) - 10, 1 << 20)])
def test_reads_give_the_exact_bytes_of_any_range(
        backend: SftpBackend, root: Path, offset: int, size: int) -> None:
    data = os.urandom(6 << 20)
    (root / "f").write_bytes(data)
    assert backend.read_range(b"f", offset, size, None) == data[offset : offset + size]


def test_a_read_stopped_midway_leaves_its_session_answering_the_next_read_right(
        sshd: SshServer, root: Path) -> None:
    data = os.urandom(8 << 20)
    (root / "f").write_bytes(data)
    single = SftpBackend(sftp_location(sshd, root), pool_size=1)  # the same session, twice
    stream = single.read_stream(b"f", 0, len(data), None)
    next(stream)
    stream.close()  # requests still in flight: their answers must not be taken as others'
    assert single.read_range(b"f", 1 << 20, 1 << 20, None) == data[1 << 20 : 2 << 20]
    single.close()


def test_a_file_with_a_255_byte_name_is_uploaded_through_a_temporary_name_that_fits(
        backend: SftpBackend, root: Path, tmp_path: Path) -> None:
    name = b"n" * 255
    (tmp_path / "local").write_bytes(b"longest name")
    backend.upload(name, str(tmp_path / "local"))
    assert os.listdir(root) == [name.decode()]
    assert (root / name.decode()).read_bytes() == b"longest name"


def test_an_upload_gives_the_exact_bytes_and_leaves_no_temporary_file(
        backend: SftpBackend, root: Path, tmp_path: Path) -> None:
    data = os.urandom((3 << 20) + 17)
    (tmp_path / "local").write_bytes(data)
    entry = backend.upload(b"up.bin", str(tmp_path / "local"))
    assert entry.size == len(data) and (root / "up.bin").read_bytes() == data
    assert os.listdir(root) == ["up.bin"]


def test_an_upload_whose_staged_copy_is_truncated_meanwhile_is_cancelled_not_a_dead_server(
        backend: SftpBackend, root: Path, tmp_path: Path) -> None:
    """A writer's O_TRUNC open empties the staged copy an upload is sending (CI saw it:
    "the file changed while it was sent" answered EIO, which marked the source
    unreachable and failed the writer's next open with EIO): ECANCELED, as a change the
    uploader is told of, and nothing left on the server."""
    local = tmp_path / "local"
    local.write_bytes(os.urandom(96 * 1024))

    class TruncatedOnce(UploadControl):
        def check(self) -> None:
            os.truncate(local, 0)  # (before the first piece is read)
            super().check()
    with pytest.raises(OSError) as changed:
        backend.upload(b"z.zip", str(local), TruncatedOnce())
    assert changed.value.errno == errno.ECANCELED
    assert os.listdir(root) == []


def test_pieces_sent_out_of_order_become_the_file_on_finish(
        backend: SftpBackend, root: Path) -> None:
    pieces = [os.urandom(backend.piece_size), os.urandom(backend.piece_size), b"tail"]
    token = backend.begin_pieces(b"big")
    for number in (3, 1, 2):
        backend.send_piece(b"big", token, number, pieces[number - 1], UploadControl())
    assert not (root / "big").exists()
    backend.finish_pieces(b"big", token, ["", "", ""])
    assert (root / "big").read_bytes() == b"".join(pieces)


def test_errors_sftp_calls_failure_get_their_real_errno(
        backend: SftpBackend, root: Path) -> None:
    (root / "full").mkdir()
    (root / "full" / "f").write_bytes(b"x")
    with pytest.raises(OSError) as exists:
        backend.mkdir(b"full", 0o755)
    with pytest.raises(OSError) as not_empty:
        backend.rmdir(b"full")
    with pytest.raises(OSError) as missing:
        backend.stat(b"nothing")
    assert (exists.value.errno, not_empty.value.errno, missing.value.errno) == (
        errno.EEXIST, errno.ENOTEMPTY, errno.ENOENT)


def test_listings_give_link_targets_and_hide_uploads_in_progress(
        backend: SftpBackend, root: Path) -> None:
    (root / "a").write_bytes(b"a")
    os.symlink("a", root / "to-a")
    (root / ".b.markfs-upload-0123abcd").write_bytes(b"half")
    entries = {e.name: e for page in backend.list_pages(b"") for e in page}
    assert sorted(entries) == [b"a", b"to-a"] and entries[b"to-a"].target == b"a"


def test_a_server_restarted_between_calls_costs_no_error(tmp_path: Path) -> None:
    server = SshServer.create(tmp_path / "own-sshd")
    (tmp_path / "files").mkdir()
    server.start()
    try:
        restarted = SftpBackend(sftp_location(server, tmp_path / "files"), pool_size=1)
        restarted.mkdir(b"before", 0o755)
        server.stop()
        server.start()
        restarted.mkdir(b"after", 0o755)  # the dead session is replaced, the call retried
        assert sorted(os.listdir(tmp_path / "files")) == ["after", "before"]
        restarted.close()
    finally:
        server.stop()


