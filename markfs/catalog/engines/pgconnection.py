"""A psycopg connection the catalog's parts read through like an APSW one (the
PostgreSQL engine's, its pools' and the host session's): `?` placeholders handed to
psycopg as `%s` (a literal `%` doubled, translated once per statement text), writes held
to the next round trip (`defer`), a dropped connection made anew outside a
transaction."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import psycopg

from markfs.errors import FsError, first_line

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|[?%]")


@lru_cache(maxsize=4096)  # the catalog's statement texts: a few hundred
def pyformat(sql: str) -> str:
    """`sql` with `?` as `%s` and `%` as `%%`, outside quotes and comments."""
    def swap(found: re.Match[str]) -> str:
        token = found.group(0)
        return "%s" if token == "?" else "%%" if token == "%" else token
    return _TOKEN.sub(swap, sql)


class PgConnection:
    """A psycopg connection the catalog's parts read through like an APSW one.

    A connection the server dropped (a restart, a cut network) is made anew at the next
    statement outside a transaction; a statement that finds it gone fails with EIO (a
    transaction it was in is lost whole: nothing of it committed).

    Writes with no answer to wait for (`defer`) are held and sent with the next
    statement, in its round trip: that statement, like every later one, sees them.

    It serves one thread at a time (`guard`): a statement holds it for its length, a
    write transaction (`Catalog.transaction`) from BEGIN to its end — so a thread's
    statement never lands inside another thread's transaction."""

    def __init__(self, conn: psycopg.Connection[Any],
                 reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
                 reads_only: bool = False) -> None:
        self.raw = conn
        self._binder = psycopg.ClientCursor(conn)  # (`bind`'s: one per connection)
        self._reconnect = reconnect
        # a read pool's: a statement that finds it gone is sent once more on a new one
        # (a read changes nothing), so the first read after a server restart succeeds
        self._reads_only = reads_only
        self.in_transaction = False
        self.owner: int | None = None  # the thread whose transaction is open, if any
        self.deferred: list[bytes] = []  # bound statements not sent yet (in a transaction)
        self.guard = threading.RLock()
        # where a statement of this thread goes instead (a pool's: `pgpools`)
        self.route: Callable[[], PgConnection | None] = lambda: None

    def close(self) -> None:
        self.raw.close()

    def bind(self, sql: str, params: tuple[Any, ...]) -> bytes:
        """A statement with its parameters bound here (psycopg's client-side binding)."""
        return self._binder.mogrify(pyformat(sql), params).encode()

    def defer(self, sql: str, params: tuple[Any, ...]) -> None:
        self.deferred.append(self.bind(sql, params))

    def take_deferred(self) -> list[bytes]:
        taken, self.deferred = self.deferred, []
        return taken

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        reader = self.route()
        if reader is not None:
            return reader.execute(sql, params)
        with self.guard:
            return self._execute(sql, params)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        if self.deferred:  # (sent first, in the same round trip)
            held = self.take_deferred()
            cursor = self._execute_script(b"; ".join([*held, self.bind(sql, params)]))
            for _ in held:
                cursor.nextset()
            return cursor
        if self.raw.broken and self._reconnect is not None and not self.in_transaction:
            self._renew()
        try:
            return self.raw.execute(pyformat(sql), params)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            if not self.raw.broken:
                raise
            if self._reads_only and self._reconnect is not None and not self.in_transaction:
                self._renew()
                return self.raw.execute(pyformat(sql), params)  # type: ignore[arg-type]
            raise FsError(errno.EIO, f"the catalog's server is gone: {first_line(exc)}"
                          ) from None

    def execute_script(self, script: str | bytes, begins: bool = False) -> psycopg.Cursor[Any]:
        """Statements without parameters, several in one round trip (the simple query
        protocol); the cursor is at the first one's result (`nextset` for the next).
        `begins`: the script begins a transaction, so where the connection turns out
        gone (the server restarted since it was last used) nothing of the transaction
        was lost — it is made anew and the script sent again, once."""
        with self.guard:
            try:
                return self._execute_script(script)
            except FsError:
                if not (begins and self.raw.broken and self._reconnect is not None):
                    raise
            self._renew()
            return self._execute_script(script)

    def _execute_script(self, script: str | bytes) -> psycopg.Cursor[Any]:
        if self.raw.broken and self._reconnect is not None and not self.in_transaction:
            self._renew()
        try:
            return self.raw.execute(script if isinstance(script, bytes) else script.encode())
        except psycopg.OperationalError as exc:
            if not self.raw.broken:
                raise
            raise FsError(errno.EIO, f"the catalog's server is gone: {first_line(exc)}"
                          ) from None

    def _renew(self) -> None:
        assert self._reconnect is not None
        try:
            fresh = self._reconnect()
        except psycopg.Error as exc:
            raise FsError(errno.EIO, f"the catalog's server does not answer: "
                          f"{first_line(exc)}") from None
        old, self.raw = self.raw, fresh
        self._binder = psycopg.ClientCursor(fresh)
        with contextlib.suppress(psycopg.Error):
            old.close()
        log.warning("reconnected to the catalog")
