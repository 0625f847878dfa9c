"""Opening an SQL source from its location: the one place that knows every driver.

Drivers are imported only when a source of theirs is opened, and their errors
become one-line `UserError`s that name the database.
"""

from __future__ import annotations

from pathlib import Path

import apsw

from markfs.errors import UserError
from markfs.sql.base import MysqlLocation, PostgresLocation, SqliteLocation, SqlSource


def open_sql_source(location: SqliteLocation | PostgresLocation | MysqlLocation | object
                    ) -> SqlSource:
    """A connection to a database source; a one-line UserError when it cannot be had."""
    if isinstance(location, PostgresLocation):
        return _open_postgres(location)
    if isinstance(location, MysqlLocation):
        return _open_mysql(location)
    if not isinstance(location, SqliteLocation):
        raise UserError("not an SQL source")
    path = Path(location.path)
    if not path.is_file():
        raise UserError(f"no such SQLite database: {path}")
    from markfs.sql.sqlite import SqliteSource

    try:
        source = SqliteSource(path)
        source.tables()
    except apsw.Error as exc:
        raise UserError(f"cannot read {path} as an SQLite database: {exc}") from None
    return source


def _open_mysql(location: MysqlLocation) -> SqlSource:
    import pymysql

    from markfs.sql.mysql import MysqlSource

    try:
        return MysqlSource(location)
    except pymysql.Error as exc:
        detail = exc.args[1] if len(exc.args) > 1 else exc
        raise UserError(f"cannot reach MySQL ({location.user}@{location.host}:"
                        f"{location.port}): {str(detail).splitlines()[0]}") from None


def _open_postgres(location: PostgresLocation) -> SqlSource:
    import psycopg

    from markfs.sql.postgres import PostgresSource

    try:
        return PostgresSource(location.conninfo)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach PostgreSQL ({location.label}): {first}") from None
