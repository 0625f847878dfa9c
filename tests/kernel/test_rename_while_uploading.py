"""A rename while the file's upload runs leaves nothing under the old name (issue 24,
part 2): rsync writes each file under a temporary name, closes it and renames it at
once — the upload of the temporary is then in flight. After 200 such rounds the server
holds exactly the final names, on S3 (moto and SeaweedFS) and SFTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from remote_helpers import RemoteSource, mount_remote, source_for

ROUNDS = 200
pytestmark = pytest.mark.both_engines  # renames through the catalog of either engine


@pytest.fixture(params=["s3", "seaweedfs", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource:
    return source_for(request, tmp_path)


def test_write_then_rename_leaves_exactly_the_final_names(
        tmp_path: Path, data_dir: Path, remote: RemoteSource) -> None:
    wanted = {f"f{number}.py" for number in range(ROUNDS)}
    for mount in mount_remote(tmp_path, data_dir, remote).checked():
        files = mount.path / "sources" / "r"
        for number in range(ROUNDS):
            temporary = files / f".f{number}.py.{number:06x}"
            temporary.write_bytes(content(number))
            temporary.chmod(0o644)
            os.rename(temporary, files / f"f{number}.py")
        assert sorted(os.listdir(files)) == sorted(wanted)
    # (the mount has stopped: every upload and rename it had is done)
    assert remote.names() == wanted, sorted(remote.names() ^ wanted)[:10]
    for number in range(ROUNDS):
        assert remote.get(f"f{number}.py") == content(number)


def content(number: int) -> bytes:
    return b"%d\n" % number * (1 + number % 50)
