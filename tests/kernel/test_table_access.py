"""Table files are no more readable than their database (issue 23, part 3): a SQLite
source's files take the database file's owner, group and read bits (less what a
folder above it keeps a class of users from); a PostgreSQL source's take the
`--uid/--gid/--mode` of its `source add`, by default the mount's owner and 0440.
Tried as other users through a mount with --allow-other."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import Mount, in_process, run_markfs
from remote_helpers import wait_until
from servers import PostgresServer
from users import ALICE, BOB, TEAM, Seen, User, alice, alice_in_team, bob, outcome

ROWS = [(i, f"row {i}") for i in range(20)]
READ = "b'\"id\",\"name\""  # what a read of data.csv starts with, as `outcome` shows it


def read_csv() -> object:
    return Seen(Path("data.csv").read_bytes())


def owner_and_mode(path: Path) -> tuple[int, int, str]:
    st = os.stat(path)
    return st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))


class Place:
    """A 0755 folder outside pytest's 0700 tmp (whose folders would keep every user but
    root from the databases): databases, the data dir, the mount."""

    def __init__(self, base: Path) -> None:
        self.base = base
        os.chmod(base, 0o755)
        self.data_dir, self.point = base / "data", base / "mnt"
        in_process(lambda tree: None, self.data_dir)
        self.point.mkdir()

    def sqlite(self, name: str, mode: int, owner: tuple[int, int] = (0, 0),
               folder_mode: int = 0o755) -> None:
        folder = self.base / f"{name}-dir"
        folder.mkdir(mode=folder_mode)
        os.chmod(folder, folder_mode)
        path = folder / "db.sqlite"
        conn = apsw.Connection(str(path))
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", ROWS)
        conn.close()
        os.chown(path, *owner)
        os.chmod(path, mode)
        run_markfs(self.data_dir, "source", "add", name, f"sqlite://{path}")
        run_markfs(self.data_dir, "manage", f"{name}/main/items")

    def table(self, source: str) -> Path:
        return self.point / "tables" / source / "main" / "items"


@pytest.fixture
def place() -> Iterator[Place]:
    base = Path(tempfile.mkdtemp(prefix="markfs-access-"))
    try:
        yield Place(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def mounted(place: Place, *extra: str) -> Mount:
    return Mount(place.data_dir, place.point).start("--allow-other", *extra)


def test_a_root_only_sqlite_database_gives_root_only_table_files(place: Place) -> None:
    place.sqlite("locked", 0o600)
    place.sqlite("open", 0o644)
    mount = mounted(place)
    try:
        assert owner_and_mode(place.table("locked") / "data.csv") == (0, 0, "0o400")
        assert owner_and_mode(place.table("locked")) == (0, 0, "0o500")
        assert outcome(bob, place.table("locked"), read_csv) == "EACCES"
        assert outcome(bob, place.point / "tables" / "locked",
                       lambda: os.listdir("main")) == "EACCES"
        assert outcome(bob, place.table("open"), read_csv).startswith(READ)
        assert (place.table("locked") / "data.csv").read_bytes().startswith(b'"id","name"')
    finally:
        mount.stop()
    mount.assert_log_clean()


def test_a_group_readable_database_is_read_by_its_group_only(place: Place) -> None:
    place.sqlite("team", 0o640, owner=(ALICE, TEAM))
    mount = mounted(place)
    try:
        assert owner_and_mode(place.table("team") / "data.csv") == (ALICE, TEAM, "0o440")
        team_member = User(BOB, BOB, (TEAM,))
        assert outcome(team_member, place.table("team"), read_csv).startswith(READ)
        assert outcome(alice, place.table("team"), read_csv).startswith(READ)
        assert outcome(bob, place.table("team"), read_csv) == "EACCES"
    finally:
        mount.stop()


def test_a_readable_database_in_a_private_folder_stays_private(place: Place) -> None:
    """alice's 0644 database in her 0700 folder: only she (and root) read its tables."""
    place.sqlite("home", 0o644, owner=(ALICE, ALICE), folder_mode=0o700)
    os.chown(place.base / "home-dir", ALICE, ALICE)
    mount = mounted(place)
    try:
        assert owner_and_mode(place.table("home") / "data.csv") == (ALICE, ALICE, "0o400")
        assert outcome(alice, place.table("home"), read_csv).startswith(READ)
        assert outcome(bob, place.table("home"), read_csv) == "EACCES"
    finally:
        mount.stop()


def test_a_chmod_of_the_database_reaches_its_table_files(place: Place) -> None:
    """Asked again every few seconds: a database made private becomes private here."""
    place.sqlite("later", 0o644)
    mount = mounted(place)
    try:
        assert outcome(bob, place.table("later"), read_csv).startswith(READ)
        os.chmod(place.base / "later-dir" / "db.sqlite", 0o600)
        wait_until(lambda: outcome(bob, place.table("later"), read_csv) == "EACCES",
                   timeout=30)
    finally:
        mount.stop()


@pytest.fixture
def pg_table(postgres: PostgresServer) -> str:
    name = f"access{os.getpid()}{os.urandom(2).hex()}"
    admin: Any = postgres.connect()
    admin.execute(f"CREATE DATABASE {name}")
    admin.close()
    conn: Any = postgres.connect(name)
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    conn.execute("INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 20) g")
    conn.close()
    return postgres.url(name)


def add_pg(place: Place, name: str, url: str, *extra: str) -> None:
    run_markfs(place.data_dir, "source", "add", name, url, *extra)
    run_markfs(place.data_dir, "scan", name)
    run_markfs(place.data_dir, "manage", f"{name}/public/items")


def test_a_postgresql_sources_table_files_are_the_mounts_owners_0440_unless_given(
        place: Place, pg_table: str) -> None:
    add_pg(place, "plain", pg_table)
    add_pg(place, "given", pg_table, "--uid", str(ALICE), "--gid", str(TEAM),
           "--mode", "0440")
    shown = json.loads(run_markfs(place.data_dir, "source", "show", "given").stdout)
    assert shown["table_files"] == {"uid": ALICE, "gid": TEAM, "mode": "0440"}
    plain = json.loads(run_markfs(place.data_dir, "source", "show", "plain").stdout)
    assert plain["table_files"] == {"uid": None, "gid": None, "mode": "0440"}
    mount = mounted(place)
    try:
        plain_files = place.point / "tables" / "plain" / "public" / "items"
        given_files = place.point / "tables" / "given" / "public" / "items"
        assert owner_and_mode(plain_files / "data.csv") == (0, 0, "0o440")
        assert outcome(bob, plain_files, read_csv) == "EACCES"
        assert owner_and_mode(given_files / "data.csv") == (ALICE, TEAM, "0o440")
        assert outcome(alice, given_files, read_csv).startswith(READ)
        assert outcome(alice_in_team, given_files, read_csv).startswith(READ)
        assert outcome(bob, given_files, read_csv) == "EACCES"
    finally:
        mount.stop()
    mount.assert_log_clean()


@pytest.mark.parametrize("extra, fragment", [
    (["--mode", "0644"], "read bits only"),
    (["--mode", "rw"], "must be octal"),
    (["--uid", "no-such-user-42"], "no such user"),
])
def test_bad_table_file_settings_are_refused(place: Place, pg_table: str, extra: list[str],
                                              fragment: str) -> None:
    done = run_markfs(place.data_dir, "source", "add", "pg", pg_table, *extra, check=False)
    assert done.returncode == 1 and fragment in done.stderr, done.stderr


def test_table_file_settings_are_refused_for_a_source_with_a_file(place: Place) -> None:
    done = run_markfs(place.data_dir, "source", "add", "x", f"file://{place.base}",
                      "--mode", "0440", check=False)
    assert done.returncode == 1 and "postgresql:// and mysql://" in done.stderr
