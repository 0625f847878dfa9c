"""Where a database source's URL can hide a password: the one place that knows.

A PostgreSQL or MySQL URL may carry one in its user part (`u:pw@`), in its query
(`?password=`), or smuggled into the user or database name (`shop password=pw`,
which libpq would read as a setting of its own). `source add` refuses all of them
(`has_password`); catalogs written before it was refused lose theirs when they are
opened (`without_password`, used by the catalog's migration). Bottom layer: used by
the namespace (parsing) and the catalog (its migration) alike.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

_IN_A_NAME = re.compile(r"password\s*=\s*\S*", re.IGNORECASE)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """(key, raw pair) of each '&'-separated part, the key unquoted."""
    return [(unquote(part.split("=", 1)[0]), part) for part in query.split("&") if part]


def has_password(url: str) -> bool:
    """Does a database URL carry a password anywhere?"""
    parts = urlsplit(url)
    names = (unquote(parts.username or ""), unquote(parts.path))
    return (parts.password is not None
            or any(key.strip().lower() == "password" for key, _ in _query_pairs(parts.query))
            or any(_IN_A_NAME.search(name) for name in names))


def without_password(url: str) -> str:
    """The URL with every password taken out (the rest as it was)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        user = quote(_IN_A_NAME.sub("", unquote(user.split(":", 1)[0])).strip(), safe="")
        netloc = f"{user}@{host}" if user else host
    path = quote(_IN_A_NAME.sub("", unquote(parts.path)).rstrip(), safe="/")
    query = "&".join(raw for key, raw in _query_pairs(parts.query)
                     if key.strip().lower() != "password")
    return parts._replace(netloc=netloc, path=path, query=query).geturl()
