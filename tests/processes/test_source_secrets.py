"""No database password is ever stored or shown (issue 23, part 4): refused wherever a
PostgreSQL or MySQL URL could carry one (user part, query, smuggled into the database
or user name), only known query parameters, the database name passed as one value,
no secret echoed by a failed add; a catalog that holds one loses it at its next open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_markfs
from old_catalogs import catalog_of_schema
from servers import PostgresServer, free_port

SECRET = "TOPSECRET"


def assert_refused_without_echo(done: Any, fragment: str) -> None:
    assert done.returncode == 1, done
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fragment in done.stderr, done.stderr
    assert SECRET not in done.stderr + done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("url, fragment", [
    (f"postgresql://u@127.0.0.1:5432/shop?password={SECRET}", "password"),
    (f"postgresql://u@127.0.0.1:5432/shop?PASSWORD={SECRET}", "password"),
    (f"postgresql://u@127.0.0.1:5432/shop?sslmode=disable&password={SECRET}", "password"),
    (f"postgresql://u@127.0.0.1:5432/shop%20password={SECRET}%20sslmode=disable", "password"),
    (f"postgresql://u%20password={SECRET}@127.0.0.1:5432/shop", "password"),
    (f"postgresql://u@127.0.0.1:5432/host=evil%20port=1%20{SECRET}=1", "database name"),
    (f"postgresql://u@127.0.0.1:5432/postgresql:%2F%2Fx@evil%2F{SECRET}", "database name"),
    (f"postgresql://u@127.0.0.1:5432/shop?options=-c%20x={SECRET}", "unknown parameter"),
    (f"postgresql://u@127.0.0.1:5432/shop?{SECRET}", "unknown parameter"),
    (f"postgresql://u@127.0.0.1:5432/shop?passfile=/tmp/{SECRET}", "unknown parameter"),
    (f"mysql://u@127.0.0.1:3306/shop?password={SECRET}", "password"),
    (f"mysql://u@127.0.0.1:3306/shop%20password={SECRET}", "password"),
    (f"mysql://u@127.0.0.1:3306/shop?charset={SECRET}", "unknown parameter"),
])
def test_a_password_anywhere_in_a_database_url_is_refused_and_never_echoed(
        data_dir: Path, url: str, fragment: str) -> None:
    done = run_markfs(data_dir, "source", "add", "db", url, check=False)
    assert_refused_without_echo(done, fragment)
    assert "db" not in run_markfs(data_dir, "source", "list").stdout.split()


def test_known_parameters_pass_and_the_database_name_is_one_value(
        data_dir: Path, postgres: PostgresServer) -> None:
    """A database whose name has a space is reached as that one name (quoted), with a
    known parameter; the stored URL is shown as given."""
    admin: Any = postgres.connect()
    admin.execute('CREATE DATABASE "my shop"')
    admin.close()
    url = f"postgresql://postgres@127.0.0.1:{postgres.port}/my%20shop?sslmode=disable"
    run_markfs(data_dir, "source", "add", "spaced", url)
    assert "PostgreSQL" in run_markfs(data_dir, "source", "test", "spaced").stdout
    assert url in run_markfs(data_dir, "source", "show", "spaced").stdout


def test_a_failed_add_says_where_not_how(data_dir: Path) -> None:
    """The error names user, host, port and database, never a libpq connection string."""
    done = run_markfs(data_dir, "source", "add", "pg",
                      f"postgresql://postgres@127.0.0.1:{free_port()}/shop?sslmode=disable",
                      check=False)
    assert done.returncode == 1 and "cannot reach PostgreSQL" in done.stderr
    assert "postgres@127.0.0.1:" in done.stderr and "/shop" in done.stderr
    assert "dbname=" not in done.stderr and "sslmode=" not in done.stderr


def test_a_stored_password_is_removed_at_the_next_open_and_the_user_told_once(
        tmp_path: Path) -> None:
    data_dir, conn = catalog_of_schema(11, tmp_path)
    conn.execute("INSERT INTO meta VALUES ('stamp', 0), ('generation', 5)")
    for name, url in (
            ("pg", f"postgresql://u@127.0.0.1:5432/shop?password={SECRET}&sslmode=disable"),
            ("pg2", f"postgresql://u:{SECRET}@127.0.0.1:5432/shop"),
            ("my", f"mysql://u:{SECRET}@127.0.0.1:3306/crm"),
            ("ok", "postgresql://u@127.0.0.1:5432/fine")):
        conn.execute("INSERT INTO sources (name, url, scheme, created_ns) VALUES (?, ?, ?, 1)",
                     (name, url, url.split(":", 1)[0]))
    conn.close()
    first = run_markfs(data_dir, "source", "list")  # the first open migrates
    told, listed = first.stderr, first.stdout
    assert "~/.pgpass" in told and "MYSQL_PWD" in told and SECRET not in told
    assert "'pg'" in told and "'pg2'" in told and "'my'" in told and "'ok'" not in told
    assert SECRET not in listed
    assert "postgresql://u@127.0.0.1:5432/shop?sslmode=disable" in listed
    assert "mysql://u@127.0.0.1:3306/crm" in listed
    assert run_markfs(data_dir, "source", "list").stderr == ""  # told once
    for file in data_dir.iterdir():  # nor in the catalog's pages or its WAL
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file
