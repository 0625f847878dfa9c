"""Source URLs: each scheme's parsed into its location (`parse_source_url`), checked
(names, parameters, endpoints, ports), refused when it carries a secret
(`refuse_credentials`), and written without one (`redact`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlsplit

from markfs.backends.base import S3Location, SftpLocation
from markfs.errors import UserError
from markfs.schemes import scheme_of
from markfs.sql.base import MysqlLocation, PostgresLocation, SqliteLocation
from markfs.urlsecrets import has_password

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_PARAMS = {"endpoint", "region"}
# libpq settings a URL may give; never password, passfile, options (any server setting)
POSTGRES_PARAMS = {"sslmode", "sslrootcert", "connect_timeout", "application_name",
                   "target_session_attrs"}
MYSQL_PARAMS: set[str] = set()
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}")
SFTP_PARAMS = {"key_file", "known_hosts", "accept_unknown_host"}
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
        goes = scheme_of(scheme).credentials_go
        hint = f"use {goes}" if goes else ""
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
    parse = PARSERS.get(scheme)
    if parse is None:
        raise UserError(f"unknown URL scheme {scheme!r} in {redact(url)!r}")
    return SourceUrl(scheme, parse(url))


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


def _parse_sqlite(url: str) -> SqliteLocation:
    return SqliteLocation(str(_parse_file(url)))


# each scheme of `markfs.schemes.SCHEMES`, parsed (test_schemes: no scheme without one)
PARSERS: dict[str, Callable[[str], Location]] = {
    "file": _parse_file, "s3": _parse_s3, "sftp": _parse_sftp, "sqlite": _parse_sqlite,
    "postgresql": _parse_postgres, "mysql": _parse_mysql,
}
