"""The crash matrix (issue 13, part 4): the daemon killed with SIGKILL at a random
moment while a writer makes fsynced files, on local, S3 (moto) and SFTP (sshd)
sources — and while a managed table is refreshed, a view changes and a folder is
renamed. After each: fsck clean, every file whose fsync returned is there with its
exact bytes, a table's old snapshot is still served.

`make test` runs 1 seed per case; `make test-long` 20."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Mount, add_source_now, run_markfs
from remote_helpers import RemoteSource, source_for, wait_until

SEEDS = range(20) if os.environ.get("MARKFS_TEST_LONG") == "1" else range(1)
FILES = 200
CONFIG = "[mount]\nio_timeout = 5.0\n"

# Makes FILES files, each written, fsynced and closed; prints the index of each one
# whose fsync returned (its promise), flushed at once. Stops at the first error.
WRITER = """
import os, random, sys
folder, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    data = random.Random(seed * 100_000 + i).randbytes(random.Random(i).randrange(1, 300_000))
    try:
        fd = os.open(os.path.join(folder, f"f{i:03}"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        break
    print(i, flush=True)
"""


def content(seed: int, i: int) -> bytes:
    return random.Random(seed * 100_000 + i).randbytes(random.Random(i).randrange(1, 300_000))


@pytest.fixture(params=["local", "s3", "sftp"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> RemoteSource | Path:
    if request.param == "local":
        folder = tmp_path / "local-files"
        folder.mkdir()
        return folder
    return source_for(request, tmp_path)


def held(storage: RemoteSource | Path, name: str) -> bytes | None:
    if isinstance(storage, Path):
        path = storage / name
        return path.read_bytes() if path.exists() else None
    return storage.get(name)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_fsynced_writes_keeps_every_fsynced_file(
        storage: RemoteSource | Path, tmp_path: Path, data_dir: Path, seed: int) -> None:
    url = f"file://{storage}" if isinstance(storage, Path) else storage.url
    add_source_now(data_dir, "r", url)
    (data_dir / "markfs.toml").write_text(CONFIG)
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start()
    try:
        folder = point / "sources" / "r"
        os.listdir(folder)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(seed),
                                   str(FILES)], stdout=subprocess.PIPE, text=True)
        time.sleep(random.Random(seed).uniform(0.2, 2.0))
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGKILL)
        mount.proc.wait()
        promised = [int(line) for line in writer.communicate(timeout=60)[0].split()]
        mount.stop()  # the dead mount's kernel side
        mount.assert_fsck_clean()
        mount.start()
        for i in promised:
            expected = content(seed, i)
            assert held(storage, f"f{i:03}") == expected, f"f{i:03} (seed {seed})"
            assert (folder / f"f{i:03}").read_bytes() == expected
    finally:
        mount.stop()
    mount.assert_fsck_clean()


def killed_midway(data_dir: Path, seed: int, *command: str) -> None:
    """Run a markfs command and kill it with SIGKILL after a random moment."""
    proc = subprocess.Popen([sys.executable, "-m", "markfs", "--data-dir", str(data_dir),
                             *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.05, 0.8))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_a_table_refresh_serves_the_old_snapshot_then_the_new(
        tmp_path: Path, data_dir: Path, seed: int) -> None:
    import sqlite3

    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)",
                     [(i, f"item {i}" * 20) for i in range(20_000)])
    conn.commit()
    run_markfs(data_dir, "source", "add", "shop", f"sqlite://{db}")
    run_markfs(data_dir, "manage", "shop/main/items")
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start()
    table = point / "tables" / "shop" / "main" / "items" / "data.csv"
    try:
        old = digest(table)
        conn.execute("INSERT INTO items VALUES (99999, 'added')")
        conn.commit()
        killed_midway(data_dir, seed, "refresh", "--force", "shop/main/items")
        assert table.read_bytes()  # readable
        mount.stop()
        mount.assert_fsck_clean()
        mount.start()
        after = table.read_bytes()
        assert digest(table) == old or b'99999,"added"' in after
        run_markfs(data_dir, "refresh", "--force", "shop/main/items")
        wait_until(lambda: b'99999,"added"' in table.read_bytes(), 10)  # (the kernel maps
        # the name to the old snapshot's inode for up to entry_ttl)
    finally:
        conn.close()
        mount.stop()
    mount.assert_fsck_clean()


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_a_scan_or_a_view_change_leaves_a_clean_catalog(
        tmp_path: Path, data_dir: Path, backing: Path, seed: int) -> None:
    for i in range(3000):
        (backing / f"file-{i}.txt").write_text(str(i))
    killed_midway(data_dir, seed, "scan", "loc")
    killed_midway(data_dir, seed, "view", "add", "texts", "loc:*.txt")
    mount = Mount(data_dir, tmp_path / "mnt")
    mount.assert_fsck_clean()
    run_markfs(data_dir, "scan", "loc")
    views = run_markfs(data_dir, "view", "list").stdout
    if "texts" not in views:  # killed before it was made: making it again works
        run_markfs(data_dir, "view", "add", "texts", "loc:*.txt")
    (tmp_path / "mnt").mkdir()
    mount.start()
    try:
        assert len(os.listdir(tmp_path / "mnt" / "views" / "texts")) == 3000
    finally:
        mount.stop()
    mount.assert_fsck_clean()


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_an_s3_folder_rename_finishes_it_at_the_next_mount(
        tmp_path: Path, data_dir: Path, seed: int, request: pytest.FixtureRequest) -> None:
    request.param = "s3"  # (source_for reads the server kind there)
    source = source_for(request, tmp_path)
    files = {f"old/f{i}": os.urandom(1000 + i) for i in range(40)}
    for name, data in files.items():
        source.put(name, data)
    add_source_now(data_dir, "r", source.url)
    point = tmp_path / "mnt"
    point.mkdir()
    mount = Mount(data_dir, point).start()
    try:
        folder = point / "sources" / "r"
        os.listdir(folder / "old")
        mover = subprocess.Popen([sys.executable, "-c", "import os, sys; os.rename(*sys.argv[1:])",
                                  str(folder / "old"), str(folder / "new")],
                                 stderr=subprocess.DEVNULL)
        time.sleep(random.Random(seed).uniform(0.05, 0.5))
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGKILL)
        mount.proc.wait()
        mover.wait(timeout=60)
        mount.stop()
        mount.assert_fsck_clean()
        mount.start()
        names = sorted(os.listdir(folder))  # (waits while an interrupted rename finishes)
        assert names in (["new"], ["old"]), names  # all moved, or none: never split
        moved = names == ["new"]
        for name, data in files.items():
            where = name.replace("old/", "new/") if moved else name
            assert source.get(where) == data
            assert (folder / where).read_bytes() == data
        assert all(n.startswith(names[0] + "/") for n in source.names())
    finally:
        mount.stop()
    mount.assert_fsck_clean()
