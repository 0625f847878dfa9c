"""`markfs share nfs` (issue 12, part 2): the EXPORT block it prints, loaded by a real
nfs-ganesha over a markfs mount, serves list, read, write and rename to NFS clients
(libnfs's tools and a small NFSv3 client of the tests); handles still resolve after
the kernel dropped its caches, and after markfs and ganesha were both restarted the
same paths have the same inode numbers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Mount, in_process, run_markfs
from nfs_client import Nfs3, NfsError
from servers import GaneshaServer, Rpcbind

TAKERS = 3  # tmpfs mounts that take the lowest free device numbers (the restart test)


@dataclass
class Exported:
    mount: Mount
    nfs: GaneshaServer
    backing: Path
    data_dir: Path
    export: str  # the exported folder (the mount point)

    def url(self, path: str, version: int = 4) -> str:
        if version == 4:
            return f"nfs://127.0.0.1/markfs/{path}?version=4&nfsport={self.nfs.nfs_port}"
        return (f"nfs://127.0.0.1{self.export}/{path}?version=3&nfsport={self.nfs.nfs_port}"
                f"&mountport={self.nfs.mount_port}")

    def client(self) -> Nfs3:
        return Nfs3(self.nfs.nfs_port, self.nfs.mount_port, self.export)


def libnfs(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def portmapper() -> Iterator[None]:
    """NFSv3 servers register with rpcbind (nfs-ganesha exits without it)."""
    rpcbind = Rpcbind()
    rpcbind.start()
    try:
        yield
    finally:
        rpcbind.stop()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, portmapper: None) -> Iterator[Exported]:
    """One mount and one ganesha for the module (each test uses files of its own)."""
    tmp_path = tmp_path_factory.mktemp("nfs")
    data_dir = tmp_path / "data"
    in_process(lambda tree: None, data_dir)
    backing = tmp_path / "backing"
    (backing / "a" / "b").mkdir(parents=True)
    (backing / "a" / "b" / "deep.txt").write_text("deep down")
    (backing / "hello.txt").write_text("hello over nfs")
    (backing / "old-name.txt").write_text("renamed over nfs")
    for name in ("root-only.txt", "root-owned.txt"):
        (backing / name).write_text("root's own")
    (backing / "root-only.txt").chmod(0o600)
    backing.chmod(0o777)  # the clients' root is squashed: anyone may write here
    run_markfs(data_dir, "source", "add", "loc", f"file://{backing}")
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start("--allow-other")
    nfs = None
    try:
        export = run_markfs(data_dir, "share", "nfs", str(point),
                            "--clients", "127.0.0.1").stdout
        nfs = GaneshaServer.create(tmp_path / "ganesha", export)
        nfs.start()
        yield Exported(mount, nfs, backing, data_dir, str(point))
    finally:
        if nfs is not None:
            nfs.stop()
        mount.stop()
    mount.assert_fsck_clean()


def test_a_listing_over_nfs_shows_the_mount(exported: Exported) -> None:
    done = libnfs("nfs-ls", exported.url("sources/loc"))
    assert done.returncode == 0, done.stderr
    assert b"hello.txt" in done.stdout and b"a" in done.stdout


def test_a_file_read_over_nfs_has_its_bytes(exported: Exported) -> None:
    done = libnfs("nfs-cat", exported.url("sources/loc/hello.txt"))
    assert done.returncode == 0 and done.stdout == b"hello over nfs", done.stderr


def test_a_file_written_over_nfs_lands_in_the_source(exported: Exported, tmp_path: Path) -> None:
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(200_000))
    done = libnfs("nfs-cp", str(local), exported.url("sources/loc/up.bin", version=3))
    assert done.returncode == 0, done.stderr
    assert (exported.backing / "up.bin").read_bytes() == local.read_bytes()


def test_a_rename_over_nfs_renames_in_the_source(exported: Exported) -> None:
    exported.client().rename("sources/loc", "old-name.txt", "new-name.txt")
    assert (exported.backing / "new-name.txt").read_text() == "renamed over nfs"
    assert not (exported.backing / "old-name.txt").exists()


def test_handles_still_resolve_after_the_kernel_dropped_its_caches(exported: Exported) -> None:
    client = exported.client()
    handle = client.lookup("sources/loc/a/b/deep.txt")
    before = client.getattr(handle)
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    assert client.getattr(handle) == before  # decoded through lookup('.') and ('..')
    assert client.getattr(client.lookup("sources/loc/a/b/deep.txt")) == before


def test_paths_keep_their_inodes_after_markfs_and_ganesha_restart(exported: Exported,
                                                                  tmp_path: Path) -> None:
    """Paths keep their inode numbers though the new mount has another device number
    (a tmpfs takes the one the old mount let go: the kernel hands out the lowest free,
    and any mount made meanwhile — another test's, in a second process — does the
    same). Handles from before the restart are then stale: ganesha's VFS handles carry
    the device number (FUSE reports no fsid of its own), so a client looks the names up
    again; where no other mount came between, the number and the handles stay."""
    paths = ["sources", "sources/loc", "sources/loc/a/b", "sources/loc/a/b/deep.txt",
             "sources/loc/hello.txt"]
    client = exported.client()
    handles = {p: client.lookup(p) for p in paths}
    before = {p: client.getattr(h).fileid for p, h in handles.items()}
    exported.nfs.stop()
    try:
        device = os.stat(exported.mount.path).st_dev
        exported.mount.stop()
        # (several takers: the other worker's test may free a lower number meanwhile,
        # which the first would take instead — so the new mount got the old one)
        takers = [tmp_path / f"taker{i}" for i in range(TAKERS)]
        for taker in takers:
            taker.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", taker.name, str(taker)], check=True)
        try:
            exported.mount.start("--allow-other")
            assert os.stat(exported.mount.path).st_dev != device
        finally:
            for taker in takers:
                subprocess.run(["umount", str(taker)], check=True)
    finally:
        exported.nfs.start()  # (the module's later tests use it, whatever happened here)
    again = exported.client()
    assert {p: again.getattr(again.lookup(p)).fileid for p in paths} == before
    with pytest.raises(NfsError) as stale:
        again.getattr(handles["sources/loc/hello.txt"])
    assert stale.value.status == 70  # NFS3ERR_STALE


def test_root_over_nfs_is_squashed_by_default(exported: Exported) -> None:
    """The export's default: a client's root is nobody — it neither reads a root-only
    file nor gives a file away (NFS3ERR_ACCES / NFS3ERR_PERM)."""
    client = exported.client()
    assert client.read(client.lookup("sources/loc/hello.txt")) == b"hello over nfs"
    with pytest.raises(NfsError) as refused:
        client.read(client.lookup("sources/loc/root-only.txt"))
    assert refused.value.status == 13  # NFS3ERR_ACCES
    with pytest.raises(NfsError) as refused:
        client.chown(client.lookup("sources/loc/root-owned.txt"), 4242, 4242)
    assert refused.value.status in (1, 13)  # NFS3ERR_PERM, NFS3ERR_ACCES
    assert (exported.backing / "root-owned.txt").stat().st_uid == 0


def test_the_export_names_its_clients_and_squashes_root(exported: Exported) -> None:
    every = run_markfs(exported.data_dir, "share", "nfs", exported.export,
                       "--clients", "*").stdout
    assert "Clients = *;" in every and "Squash = Root_Squash;" in every
    assert "No_Root_Squash" not in every
    named = run_markfs(exported.data_dir, "share", "nfs", exported.export, "--clients",
                       "10.0.0.0/8,files.example.org,::1", "--no-root-squash").stdout
    assert "Clients = 10.0.0.0/8, files.example.org, ::1;" in named
    assert "Squash = No_Root_Squash;" in named
    assert "10.0.0.0/8(rw,sync,no_subtree_check,no_root_squash,fsid=" in named


@pytest.mark.parametrize("clients", ["", "*,10.0.0.1", "a;b", "x }\nEXPORT {", "-o"])
def test_share_nfs_refuses_clients_it_cannot_name(exported: Exported, clients: str) -> None:
    done = run_markfs(exported.data_dir, "share", "nfs", exported.export, "--clients",
                      clients, check=False)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "EXPORT" not in done.stdout


def test_share_nfs_needs_its_clients_named(exported: Exported) -> None:
    done = run_markfs(exported.data_dir, "share", "nfs", exported.export, check=False)
    assert done.returncode == 2 and "--clients" in done.stderr


def test_share_nfs_refuses_a_mount_of_another_data_directory(
        exported: Exported, tmp_path: Path) -> None:
    other = tmp_path / "other"
    in_process(lambda tree: None, other)
    done = run_markfs(other, "share", "nfs", exported.export, "--clients", "127.0.0.1",
                      check=False)
    assert done.returncode == 1 and "is not mounted from" in done.stderr
