"""The demo's SQLite shop database: a source made for `markfs demo` (not the catalog)."""

from __future__ import annotations

from pathlib import Path

import apsw

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


def make_shop_db(path: Path) -> None:
    """The demo's SQLite database (written to a temporary name, then renamed)."""
    temp = path.with_suffix(".tmp")
    temp.unlink(missing_ok=True)
    conn = apsw.Connection(str(temp))
    with conn:
        conn.execute(_SHOP_SQL)
    conn.close()
    temp.replace(path)
