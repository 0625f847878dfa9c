"""The embedded demo: a folder of sample files (source `demo`) and a generated SQLite
shop database (source `shop`) whose tables, one of a million rows, are managed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import apsw

from markfs.catalog import sources as sq
from markfs.config import DataDir
from markfs.namespace.sources import add_source
from markfs.namespace.tables import ManagedTables, RowProgress, TableRef
from markfs.namespace.tree import Tree

DEMO_SOURCE = "demo"
SHOP_SOURCE = "shop"
SHOP_TABLES = ("customers", "products", "orders")
ORDERS = 1_000_000

# Generated inside SQLite (a recursive CTE): a million rows in about a second.
_SHOP_SQL = f"""
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT,
                        email TEXT, joined TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC,
                       category TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER,
                     quantity INTEGER, amount REAL, ordered_at TEXT, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO customers SELECT i, 'customer ' || i,
       (CASE i % 5 WHEN 0 THEN 'FR' WHEN 1 THEN 'DE' WHEN 2 THEN 'US' WHEN 3 THEN 'JP'
        ELSE 'BR' END),
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'c' || i || '@example.com' END,
       date('2020-01-01', '+' || (i % 1500) || ' days') FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO products SELECT i, 'product ' || i, round(1 + (i * 37 % 500) / 4.0, 2),
       (CASE i % 4 WHEN 0 THEN 'books' WHEN 1 THEN 'games' WHEN 2 THEN 'garden'
        ELSE 'kitchen' END) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ORDERS})
INSERT INTO orders SELECT i, 1 + (i * 7919) % 5000, 1 + (i * 104729) % 200, 1 + i % 5,
       round(((i * 7919) % 10000) / 100.0, 2),
       datetime('2024-01-01', '+' || (i % 31536000) || ' seconds'),
       CASE WHEN i % 100 = 0 THEN 'gift wrap' ELSE NULL END FROM n;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 90;
"""


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


def make_shop_db(path: Path) -> None:
    """The demo's SQLite database (written to a temporary name, then renamed)."""
    temp = path.with_suffix(".tmp")
    temp.unlink(missing_ok=True)
    conn = apsw.Connection(str(temp))
    with conn:
        conn.execute(_SHOP_SQL)
    conn.close()
    temp.replace(path)


def build_shop(tree: Tree, data_dir: DataDir, progress: RowProgress | None = None) -> bool:
    """The shop database as source `shop`, its tables managed; True if anything was made."""
    db = data_dir.root / "demo-shop.db"
    if not db.exists():
        make_shop_db(db)
    created = False
    if sq.get_source(tree.catalog.conn, SHOP_SOURCE) is None:
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
    if sq.get_source(tree.catalog.conn, DEMO_SOURCE) is None:
        add_source(tree, DEMO_SOURCE, f"file://{files_dir.resolve()}", read_only=False)
        created = True
    return created
