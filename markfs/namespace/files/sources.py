"""Sources: parsing their URLs, adding and removing them, and the backend of each."""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlsplit

from markfs.backends.base import Backend, S3Location, SftpLocation
from markfs.backends.local import LocalBackend
from markfs.catalog import nodes
from markfs.catalog import sources as source_rows
from markfs.catalog.search import forget_source
from markfs.catalog.sources import FilesAccess, SourceRow
from markfs.errors import SourceShut, UserError
from markfs.model import Kind, Node
from markfs.namespace.files.health import SourceHealth, SourceState
from markfs.namespace.tables.access import TableAccess, access_of
from markfs.namespace.tree import SOURCES_ID, TABLES_ID, Tree
from markfs.schemes import scheme_of
from markfs.sql.base import MysqlLocation, PostgresLocation, SqliteLocation, SqlSource
from markfs.sql.connect import open_sql_source
from markfs.urlsecrets import WHERE_PASSWORDS_GO, has_password

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_PARAMS = {"endpoint", "region"}
# libpq settings a URL may give; never password, passfile, options (any server setting)
POSTGRES_PARAMS = {"sslmode", "sslrootcert", "connect_timeout", "application_name",
                   "target_session_attrs"}
MYSQL_PARAMS: set[str] = set()
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}")
SFTP_PARAMS = {"key_file", "known_hosts", "accept_unknown_host"}
NO_FILES_ACCESS = FilesAccess()  # the defaults: the mount's owner and group, 0440
Location = (Path | S3Location | SftpLocation | SqliteLocation | PostgresLocation
            | MysqlLocation)


@dataclass(frozen=True)
class SourceUrl:
    scheme: str
    location: Location


def validate_source_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"invalid source name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")


def _query(url: str, query: str, allowed: set[str]) -> dict[str, str]:
    """The URL's query parameters, each one of `allowed`. A refusal names an unknown
    key only when it looks like one: a bare word may be a secret pasted in."""
    params: dict[str, str] = {}
    scheme = urlsplit(url).scheme
    for part in (p for p in query.split("&") if p):
        key, has_value, value = part.partition("=")
        key = unquote(key)
        if key not in allowed:  # its value may be a secret: never echoed
            named = f" {key!r}" if has_value and _PARAM_NAME.fullmatch(key) else ""
            known = ", ".join(sorted(allowed)) or "none"
            raise UserError(f"unknown parameter{named} in a {scheme}:// URL (known: {known})")
        params[key] = unquote(value)
    return params


def _has_secret(text: str) -> bool:
    """Does a URL (or a URL inside a query value) carry credentials in its user part?"""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.password is not None or (parts.scheme in ("s3", "http", "https")
                                          and "@" in parts.netloc)


def refuse_credentials(url: str) -> None:
    """Credentials never go in a source URL (they would be stored and shown): refused,
    without echoing any part of the URL that could hold them."""
    scheme = url.split(":", 1)[0].lower()
    values = [v for vs in parse_qs(urlsplit(url).query).values() for v in vs]
    database = scheme_of(scheme).server_database and has_password(url)
    if database or _has_secret(url) or any(_has_secret(v) for v in values):
        hint = {"s3": "use boto3's usual chain (environment, ~/.aws/credentials)",
                "sftp": "use key_file or ssh-agent",
                **{k: f"use {v}" for k, v in WHERE_PASSWORDS_GO.items()}}.get(scheme, "")
        what = "passwords" if database else "credentials"
        raise UserError(f"{what} do not belong in source URLs (they would be stored "
                        f"and shown){': ' + hint if hint else ''}")


def redact(url: str) -> str:
    """The URL as it may be shown: the user part of the URL and of any URL in its
    query (an S3 `endpoint`) without a password or S3 keys. URLs with credentials
    are refused before they are stored; this guards what older versions stored."""
    def clean(text: str) -> str:
        parts = urlsplit(text)
        if "@" not in parts.netloc or not (parts.password is not None
                                            or parts.scheme in ("s3", "http", "https")):
            return text
        return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(clean(v) != v for _k, v in pairs):  # (else the query stays byte for byte)
        url = parts._replace(query="&".join(f"{k}={clean(v)}" for k, v in pairs)).geturl()
    return clean(url)


def parse_source_url(url: str) -> SourceUrl:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UserError("not a source URL (expected e.g. file:///abs/dir)") from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise UserError(f"not a source URL: {redact(url)!r} (expected e.g. file:///abs/dir)")
    refuse_credentials(url)
    if scheme == "file":
        return SourceUrl(scheme, _parse_file(url))
    if scheme == "s3":
        return SourceUrl(scheme, _parse_s3(url))
    if scheme == "sftp":
        return SourceUrl(scheme, _parse_sftp(url))
    if scheme == "sqlite":
        return SourceUrl(scheme, SqliteLocation(str(_parse_file(url))))
    if scheme == "postgresql":
        return SourceUrl(scheme, _parse_postgres(url))
    if scheme == "mysql":
        return SourceUrl(scheme, _parse_mysql(url))
    raise UserError(f"unknown URL scheme {scheme!r} in {redact(url)!r}")


def _parse_file(url: str) -> Path:
    parts = urlsplit(url)
    if parts.query or parts.fragment or "?" in url:
        raise UserError(f"{parts.scheme}:// URLs take no parameters (a '?' in a path is "
                        "written %3F)")
    if parts.netloc not in ("", "localhost"):
        raise UserError(f"file:// URLs take an absolute path, got host {parts.netloc!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise UserError(f"file:// URLs take an absolute path: {url!r}")
    if ".." in path.split("/"):
        raise UserError(f"source path must not contain '..': {path}")
    return Path(path)


def _parse_s3(url: str) -> S3Location:
    parts = urlsplit(url)
    params = _query(url, parts.query, S3_PARAMS)
    bucket = parts.netloc
    if not BUCKET_RE.fullmatch(bucket):
        raise UserError(f"invalid S3 bucket name {bucket!r} in {url!r}")
    prefix = unquote(parts.path).strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise UserError(f"invalid S3 prefix {prefix!r}: empty, '.' or '..' segments")
    endpoint = params.get("endpoint")
    if endpoint is not None:
        _check_endpoint(endpoint)
    return S3Location(bucket, prefix + "/" if prefix else "", endpoint, params.get("region"))


def _check_endpoint(endpoint: str) -> None:
    try:
        parts = urlsplit(endpoint)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
        raise UserError("endpoint is not a URL (expected http://HOST:PORT)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"endpoint must be an http:// or https:// URL: {endpoint!r}")
    try:
        port = parts.port  # ValueError when out of range
    except ValueError:
        port = 0
    if port == 0:
        raise UserError(f"invalid port in endpoint {endpoint!r} (1-65535)")


def _server_port(parts: SplitResult, url: str, default: int, password_hint: str) -> int:
    """The port of a user@host[:port] URL, which must carry no password."""
    if parts.password is not None:
        raise UserError(f"passwords do not belong in source URLs: {password_hint}")
    try:
        return parts.port or default
    except ValueError:
        raise UserError(f"invalid port in {url!r}") from None


def _parse_postgres(url: str) -> PostgresLocation:
    parts = urlsplit(url)
    port = _server_port(parts, url, 5432, "use ~/.pgpass or PGPASSWORD")
    params = _query(url, parts.query, POSTGRES_PARAMS)
    database = unquote(parts.path.strip("/"))
    if not parts.hostname or not database:
        raise UserError("postgresql URLs need a host and a database: "
                        "postgresql://user@host:port/db")
    if "=" in database or re.match(r"postgres(ql)?:", database, re.IGNORECASE):
        # libpq reads such a database name as connection settings of its own
        raise UserError("invalid database name in a postgresql:// URL: no '=' and no URL "
                        "(give settings as ?sslmode=... parameters)")
    user = unquote(parts.username) if parts.username else None
    settings = {"host": parts.hostname, "port": str(port), "dbname": database,
                **({"user": user} if user else {}), **params}
    label = f"{user + '@' if user else ''}{parts.hostname}:{port}/{database}"
    return PostgresLocation(" ".join(f"{k}={_libpq_value(v)}" for k, v in settings.items()),
                            label)


def _libpq_value(value: str) -> str:
    """One libpq connection-string value, quoted: spaces or quotes inside it can never
    start another setting."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parse_mysql(url: str) -> MysqlLocation:
    parts = urlsplit(url)
    port = _server_port(parts, url, 3306, "use MYSQL_PWD or ~/.my.cnf")
    _query(url, parts.query, MYSQL_PARAMS)
    if not parts.hostname or not parts.username:
        raise UserError("mysql URLs need a user and a host: mysql://user@host:port/db")
    database = unquote(parts.path.strip("/")) or None
    return MysqlLocation(parts.hostname, port, unquote(parts.username), database)


def _parse_sftp(url: str) -> SftpLocation:
    parts = urlsplit(url)
    params = _query(url, parts.query, SFTP_PARAMS)
    port = _server_port(parts, url, 22, "use key_file or ssh-agent")
    if not parts.username or not parts.hostname:
        raise UserError(f"sftp URLs need a user and a host: sftp://user@host/path, "
                        f"got {url!r}")
    path = unquote(parts.path) or "/"
    if ".." in path.split("/"):
        raise UserError(f"source path must not contain '..': {path}")
    for key in ("key_file", "known_hosts"):
        if key in params and not Path(params[key]).is_file():
            raise UserError(f"{key} not found: {params[key]}")
    accept = params.get("accept_unknown_host", "0").lower() in ("1", "true", "yes")
    return SftpLocation(parts.username, parts.hostname, port, path, params.get("key_file"),
                        params.get("known_hosts"), accept)


def backend_for(row: SourceRow, timeout: float = 30.0) -> Backend:
    return _backend_at(parse_source_url(row.url).location, row.name, timeout, row.created_ns)


def _backend_at(location: object, name: str, timeout: float, created_ns: int) -> Backend:
    if isinstance(location, S3Location):
        from markfs.backends.s3 import S3Backend  # boto3 is slow to import: only when used

        return S3Backend(location, read_timeout=timeout, created_ns=created_ns)
    if isinstance(location, SftpLocation):
        from markfs.backends.sftp import SftpBackend

        return SftpBackend(location, timeout=timeout)
    if isinstance(location, (SqliteLocation, PostgresLocation, MysqlLocation)):
        raise UserError(f"source {name!r} holds tables, not files")
    assert isinstance(location, Path)
    return LocalBackend(location)


def _check_usable(name: str, location: S3Location | SftpLocation) -> None:
    """What `source test` does, before a remote source is recorded."""
    backend = _backend_at(location, name, CHECK_TIMEOUT_S, time.time_ns())
    try:  # (an SFTP session it opened ends with this process: its ssh reads our pipe)
        backend.check()
    except OSError as exc:
        raise UserError(f"source {name!r} cannot be used: {exc.strerror or exc} (fix the URL "
                        "or the server; --no-check adds it anyway)") from None


def _add_sql_source(tree: Tree, name: str, url: str, parsed: SourceUrl,
                    read_only: bool, files: FilesAccess) -> None:
    """A database: recorded now, its tables appear under /tables once managed."""
    open_sql_source(parsed.location).close()  # a clear error now beats one at scan time
    with tree.transaction() as txn:
        source_rows.insert_source(txn, name, redact(url), parsed.scheme, read_only, files)


def _check_files_access(parsed: SourceUrl, files: FilesAccess) -> None:
    if files == NO_FILES_ACCESS:
        return
    if not scheme_of(parsed.scheme).server_database:
        raise UserError("--uid, --gid and --mode are for postgresql:// and mysql:// sources "
                        "(a SQLite source's table files take the database file's owner, "
                        "group and read bits)")
    if files.mode is not None and files.mode & ~0o444:
        raise UserError("--mode takes read bits only, e.g. 0440 (table files are read-only)")


def open_sql(row: SourceRow) -> SqlSource:
    """A connection to the database of an SQL source (the caller closes it)."""
    return open_sql_source(parse_source_url(row.url).location)


CHECK_TIMEOUT_S = 15.0  # `source add` waits this long for a remote source's first answer


def table_access_of(row: SourceRow | None) -> TableAccess:
    """Who may read a source's table files."""
    location = None if row is None else parse_source_url(row.url).location
    return access_of(row, location.path if isinstance(location, SqliteLocation) else None)


def is_sql(row: SourceRow) -> bool:
    return scheme_of(row.scheme).tables


def add_source(tree: Tree, name: str, url: str, read_only: bool,
               check: bool = False, files: FilesAccess = NO_FILES_ACCESS) -> Node | None:
    """Register a source and give it its folder under /sources; `check`: an S3 or SFTP
    source must answer first (as `source test`), else a one-line error; `files`: who
    may read a PostgreSQL/MySQL source's table files."""
    validate_source_name(name)
    parsed = parse_source_url(url)
    _check_files_access(parsed, files)
    if tree.catalog.sources.get_source(name) is not None:
        raise UserError(f"a source named {name!r} exists already")
    if check and isinstance(parsed.location, (S3Location, SftpLocation)):
        _check_usable(name, parsed.location)
    if isinstance(parsed.location, (SqliteLocation, PostgresLocation, MysqlLocation)):
        _add_sql_source(tree, name, url, parsed, read_only, files)
        return None
    now = time.time_ns()
    mode, uid, gid, mtime = stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), now
    if isinstance(parsed.location, Path):
        if not parsed.location.is_dir():
            raise UserError(f"not a directory: {parsed.location}")
        root = os.stat(parsed.location)
        mode, uid, gid, mtime = root.st_mode, root.st_uid, root.st_gid, root.st_mtime_ns
    with tree.transaction() as txn:
        source_id = source_rows.insert_source(txn, name, redact(url), parsed.scheme, read_only)
        mode = stat.S_IFDIR | (stat.S_IMODE(mode) & (0o555 if read_only else 0o7777))
        new = nodes.NewNode(Kind.SOURCE, mode, uid, gid, 0, mtime, now, nlink=2,
                        source_id=source_id, remote_path=b"")
        node_id = nodes.insert_node(txn, SOURCES_ID, name.encode(), new,
                                generation=tree.generation)
    node = tree.node(node_id)
    assert node is not None
    return node


def remove_source(tree: Tree, name: str, discard_pending: bool = False) -> None:
    """Take a source out of the catalog (its data is not touched). Files written through
    a mount and not on the source yet would be lost with it: refused unless
    `discard_pending`."""
    row = require_source(tree, name)
    waiting = tree.catalog.uploads.count_of_source(row.id)
    if waiting and not discard_pending:
        raise UserError(f"source {name!r} has {waiting} file(s) written through a mount "
                        "and not uploaded yet (see: markfs status); wait for them, or "
                        "remove it anyway with --discard-pending")
    node = tree.catalog.nodes.node_by_remote(row.id, b"")
    tables = tree.catalog.nodes.find_child(TABLES_ID, name.encode())
    with tree.transaction() as txn:
        for folder in (node, tables):
            if folder is not None:
                nodes.delete_subtree(txn, folder.id)
        forget_source(txn, row.id)
        source_rows.delete_source(txn, row.id)


def require_source(tree: Tree, name: str) -> SourceRow:
    row = tree.catalog.sources.get_source(name)
    if row is None:
        raise UserError(f"unknown source: {name!r}")
    return row


def list_sources(tree: Tree) -> list[SourceRow]:
    return tree.catalog.sources.list_sources()


class SourceSet:
    """The backends of all sources of a mount, by source id."""

    def __init__(self, tree: Tree, timeout: float = 30.0) -> None:
        self.tree = tree
        self.timeout = timeout
        self.health = SourceHealth()  # a mount gives it a file for `markfs status`
        self._backends: dict[int, Backend] = {}
        self._rows: dict[int, SourceRow] = {}

    def row(self, source_id: int) -> SourceRow | None:
        if source_id not in self._rows:
            row = self.tree.catalog.sources.get_source_by_id(source_id)
            if row is None:
                return None
            self._rows[source_id] = row
        return self._rows[source_id]

    def scheme(self, source_id: int) -> str | None:
        row = self.row(source_id)
        return None if row is None else row.scheme

    def name(self, source_id: int | None) -> str:
        """The source's name, for metrics labels ("" for nodes of no source)."""
        row = self.row(source_id) if source_id is not None else None
        return row.name if row is not None else ""

    def answered(self, source_id: int | None, error: BaseException | None = None) -> None:
        """What a call to a source's backend came to, for its health (a call not made
        because the source is shut says nothing new)."""
        if isinstance(error, SourceShut):
            return
        name = self.name(source_id)
        if name:
            if error is None:
                self.health.worked(name)
            else:
                self.health.failed(name, error)

    def shut(self, source_id: int) -> SourceState | None:
        """The state of a remote source that is not ok (its calls fail at once until it
        answers a probe); None for one that is, and for local sources (their disk is
        asked each time: one bad file must not shut the folder)."""
        if scheme_of(self.scheme(source_id)).local:
            return None
        state = self.health.state_of(self.name(source_id))
        return state if state is not None and state.state != "ok" else None

    def shut_ids(self) -> list[int]:
        """Remote sources whose calls fail at once now."""
        return [row.id for row in self.tree.catalog.sources.list_sources()
                if not is_sql(row) and self.shut(row.id) is not None]

    def table_access(self, source_id: int) -> TableAccess:
        """Who may read the source's table files (a SQLite file is looked at now)."""
        return table_access_of(self.row(source_id))

    def backend(self, source_id: int) -> Backend | None:
        if source_id not in self._backends:
            row = self.row(source_id)
            if row is None:
                return None
            self._backends[source_id] = backend_for(row, self.timeout)
        return self._backends[source_id]

    def slow_to_connect(self) -> list[Backend]:
        """The backends whose first connection is slow (SFTP: starting ssh and its key
        exchange), made now; others are not built before their first use (an S3 client
        takes ~0.3 s to build, and building it connects to nothing)."""
        rows = self.tree.catalog.sources.list_sources()
        found = [self.backend(row.id) for row in rows if scheme_of(row.scheme).connect_ahead]
        return [backend for backend in found if backend is not None]

    def local_roots(self) -> dict[int, Path]:
        """Source id -> directory, for every file:// source (for the watcher)."""
        out = {}
        for row in self.tree.catalog.sources.list_sources():
            location = parse_source_url(row.url).location
            if isinstance(location, Path):
                out[row.id] = location.resolve()
        return out
