"""One record per kind of source URL (`file://`, `s3://`, `sftp://`, `sqlite://`,
`postgresql://`, `mysql://`): what markfs does differently for each, said once. Every
layer may read it (it imports nothing of markfs); how a URL of each is parsed and its
backend opened lives with the source set (`namespace.files.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    name: str
    tables: bool = False  # a database: its tables show under /tables, it has no files
    # the source's owners and modes are this machine's (the kernel checks them itself)
    local: bool = False
    keeps_modes: bool = False  # files and folders have permission bits of their own
    # backends slow to connect (ssh and its key exchange): connected at mount start
    connect_ahead: bool = False
    # a database server: its URL may carry a password (moved to ~/.pgpass-like files),
    # and no file of it says who may read it (table files take --uid/--gid/--mode)
    server_database: bool = False


SCHEMES = {scheme.name: scheme for scheme in (
    Scheme("file", local=True, keeps_modes=True),
    Scheme("s3"),
    Scheme("sftp", keeps_modes=True, connect_ahead=True),
    Scheme("sqlite", tables=True),
    Scheme("postgresql", tables=True, server_database=True),
    Scheme("mysql", tables=True, server_database=True),
)}
UNKNOWN = Scheme("")  # a scheme markfs does not know: nothing special about it


def scheme_of(name: str | None) -> Scheme:
    return SCHEMES.get(name or "", UNKNOWN)
