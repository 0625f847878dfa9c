"""One record per kind of source URL (`file://`, `s3://`, `sftp://`, `sqlite://`,
`postgresql://`, `mysql://`): what markfs does differently for each, said once. Every
layer may read it (it imports nothing of markfs): a backend says its own (`Backend.scheme`),
a source row its by name (`scheme_of`). A URL of each is parsed by `urls.PARSERS` and
its backend opened by `sources.OPENERS` (namespace.files); test_schemes checks that no
scheme lacks either. A new kind of storage: a record here, a parser, an opener, its backend.
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
    # a rename is one step on the server (else a copy then a delete: the namespace
    # journals it, so a crash between the two is finished at the next start)
    atomic_rename: bool = False
    # backends slow to connect (ssh and its key exchange): connected at mount start
    connect_ahead: bool = False
    # a database server: its URL may carry a password (moved to ~/.pgpass-like files),
    # and no file of it says who may read it (table files take --uid/--gid/--mode)
    server_database: bool = False
    # where its credentials go instead of the URL (said when a URL carries them)
    credentials_go: str = ""


SCHEMES = {scheme.name: scheme for scheme in (
    Scheme("file", local=True, keeps_modes=True, atomic_rename=True),
    Scheme("s3", credentials_go="boto3's usual chain (environment, ~/.aws/credentials)"),
    Scheme("sftp", keeps_modes=True, atomic_rename=True, connect_ahead=True,
           credentials_go="key_file or ssh-agent"),
    Scheme("sqlite", tables=True),
    Scheme("postgresql", tables=True, server_database=True,
           credentials_go="~/.pgpass or PGPASSWORD"),
    Scheme("mysql", tables=True, server_database=True, credentials_go="MYSQL_PWD or ~/.my.cnf"),
)}
UNKNOWN = Scheme("")  # a scheme markfs does not know: nothing special about it


def scheme_of(name: str | None) -> Scheme:
    return SCHEMES.get(name or "", UNKNOWN)
