"""The APSW SQLite catalog: the truth about nodes, sources and metadata. All SQL lives here."""

from markfs.catalog.db import Catalog
from markfs.catalog.txn import Mirror, Txn

__all__ = ["Catalog", "Mirror", "Txn"]
