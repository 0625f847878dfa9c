"""The embedded demo: a folder of sample files (source `demo`), a generated SQLite
shop database (source `shop`) whose tables, one of a million rows, are managed, and a
view, tags and categories gathered over both."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from markfs.config import DataDir
from markfs.namespace.curation import definitions
from markfs.namespace.files.sources import SourceSet, add_source, list_sources
from markfs.namespace.tables.managed import ManagedTables, RowProgress, TableRef
from markfs.namespace.tree import Tree
from markfs.sql.demo_shop import ORDERS, make_shop_db

DEMO_SOURCE = "demo"
SHOP_SOURCE = "shop"
SHOP_TABLES = ("customers", "products", "orders")
DEMO_VIEW = "finance"
# (tag, mount paths) and (category, mount paths) the demo gathers
DEMO_TAGS = (("finance", ("/sources/demo/finance/2024/revenue.csv", "/tables/shop/main/orders")),
             ("q1", ("/sources/demo/finance/2024/revenue.csv",)),
             ("logs", ("/sources/demo/logs/events.jsonl",)))
DEMO_CATEGORIES = (("reports/2024", ("/sources/demo/finance/2024/revenue.csv",)),
                   ("reports/2023", ("/sources/demo/finance/2023/notes.txt",)),
                   ("data/sales", ("/tables/shop/main/orders", "/tables/shop/main/customers")))
__all__ = ["ORDERS", "build_curation", "build_demo", "build_shop"]


def _sample_files() -> dict[str, bytes]:
    rows = [("day", "region", "revenue")] + [
        (f"2024-01-{d:02d}", region, str(100 * d + i))
        for d in range(1, 32) for i, region in enumerate(("north", "south", "west"))
    ]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    events = "".join(json.dumps({"id": i, "kind": "click" if i % 3 else "view"}) + "\n"
                     for i in range(200))
    return {
        "README.txt": b"Files of the markfs demo source. Everything here is writable.\n",
        "finance/2024/revenue.csv": buf.getvalue().encode(),
        "finance/2023/notes.txt": b"Figures for 2023 are still being reconciled.\n",
        "logs/events.jsonl": events.encode(),
        "empty-folder/.keep": b"",
    }



def has_source(tree: Tree, name: str) -> bool:
    return any(row.name == name for row in list_sources(tree))


def build_shop(tree: Tree, data_dir: DataDir, progress: RowProgress | None = None) -> bool:
    """The shop database as source `shop`, its tables managed; True if anything was made."""
    db = data_dir.root / "demo-shop.db"
    if not db.exists():
        make_shop_db(db)
    created = False
    if not has_source(tree, SHOP_SOURCE):
        add_source(tree, SHOP_SOURCE, f"sqlite://{db.resolve()}", read_only=True)
        created = True
    managed = ManagedTables(tree, data_dir)
    managed.rescan(SHOP_SOURCE)
    for name in SHOP_TABLES:
        table = managed.find(TableRef(SHOP_SOURCE, "main", name))
        if not table.managed:
            managed.take_snapshot(table, progress)
            created = True
    return created


def build_demo(tree: Tree, files_dir: Path) -> bool:
    """Create the demo files and source if missing; True if anything was created."""
    created = False
    for rel, content in _sample_files().items():
        path = files_dir / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            created = True
    if not has_source(tree, DEMO_SOURCE):
        add_source(tree, DEMO_SOURCE, f"file://{files_dir.resolve()}", read_only=False)
        created = True
    return created


def build_curation(tree: Tree) -> bool:
    """View `finance` (the demo's finance files and the orders table; new files land in
    demo/finance), a few tags and categories; True if anything was made."""
    if any(view.name == DEMO_VIEW for view in definitions.all_views(tree)):
        return False
    files = SourceSet(tree)
    definitions.add_view(tree, files, DEMO_VIEW, ["demo:finance/**", "shop:orders"],
                      landing="demo/finance")
    for tag, paths in DEMO_TAGS:
        definitions.tag_paths(tree, files, tag, list(paths), on=True)
    for category, paths in DEMO_CATEGORIES:
        definitions.add_category(tree, category)
        definitions.assign(tree, files, category, list(paths), on=True)
    return True
