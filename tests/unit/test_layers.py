"""The layers import only downward, and each library stays in the layer that owns it
(docs/architecture.md, "Layers"): read from the source with `ast`, no import run."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "markfs"

# What each part of markfs may import besides itself: the layer picture, written once.
BASE = {"errors", "values", "model", "config", "metrics", "urlsecrets", "runtime", "bounded",
        "schemes", "identity", "columns",
        "__init__"}
ALLOWED: dict[str, set[str]] = {
    **{part: BASE for part in BASE},
    "changefeed": BASE,
    "backends": BASE,
    "sql": BASE,
    "scan": BASE | {"backends"},
    "catalog": BASE,
    "cache": BASE | {"backends"},
    "render": BASE | {"cache", "scan"},
    "namespace": BASE | {"backends", "sql", "scan", "cache", "catalog", "render", "changefeed"},
    "admin": BASE | {"backends", "sql", "scan", "cache", "catalog", "render", "namespace"},
    "fs": BASE | {"backends", "scan", "cache", "catalog", "render", "namespace", "changefeed"},
    "demo": BASE | {"sql", "namespace"},
    "cli": BASE | {"backends", "sql", "scan", "cache", "catalog", "render", "namespace",
                   "admin", "fs", "changefeed", "demo"},
    "__main__": {"cli"},
}
# A third-party library and the only part that may import it.
OWNED = {"pyfuse3": {"fs"}, "apsw": {"catalog", "sql"}}


def part_of(path: Path, root: Path = PACKAGE) -> str:
    """A module's part: its top-level package under markfs/, or the module's name."""
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports(path: Path) -> Iterator[str]:
    """Every module name `path` imports, at any depth (lazy imports in functions too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "markfs":  # `from markfs import runtime, __version__`
                yield from (f"markfs.{alias.name}" if is_module(alias.name) else "markfs.__init__"
                            for alias in node.names)
            else:
                yield node.module


def is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def upward_imports(paths: list[Path], root: Path = PACKAGE) -> list[str]:
    """`path imports name` for every import of a part the layer picture does not allow."""
    found = []
    for path in paths:
        part = part_of(path, root)
        for name in imports(path):
            target = name.split(".")[1] if name.startswith("markfs.") else part
            if target != part and target not in ALLOWED[part]:
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 50, f"markfs's modules not found under {PACKAGE}"
    return found


def test_every_part_is_placed_in_the_layer_picture() -> None:
    assert {part_of(path) for path in modules()} <= ALLOWED.keys()


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = upward_imports(modules())
    assert not upward, "\n".join(upward)


def test_each_library_is_imported_only_by_the_part_that_owns_it() -> None:
    strays = [f"{path.relative_to(PACKAGE)} imports {name}"
              for path in modules() for name in imports(path)
              if name.split(".")[0] in OWNED and part_of(path) not in OWNED[name.split(".")[0]]]
    assert not strays, "\n".join(strays)


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The check above can fail: a catalog module importing the namespace, even lazily
    inside a function, is found."""
    probe = tmp_path / "catalog" / "nodes.py"
    probe.parent.mkdir()
    probe.write_text((PACKAGE / "catalog" / "nodes.py").read_text()
                     + "\n\ndef later() -> None:\n    from markfs.namespace.tree import Tree\n")
    assert upward_imports([probe], tmp_path) == ["catalog/nodes.py imports markfs.namespace.tree"]


def test_only_the_catalog_touches_a_connection() -> None:
    """The layers above read the catalog through its typed parts (`Catalog.nodes`,
    `.uploads`, ...) and write it in a transaction: no `.conn` outside markfs/catalog/."""
    reaching = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in modules()
                if part_of(path) != "catalog"
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Attribute) and node.attr == "conn"]
    assert not reaching, "\n".join(reaching)


def test_no_package_folder_holds_more_than_15_modules() -> None:
    """A folder a newcomer can take in at a glance (issue 26): sub-packages beyond it."""
    crowded = {str(folder.relative_to(PACKAGE)): count for folder in {p.parent for p in modules()}
               if (count := len(list(folder.glob("*.py")))) > 15}
    assert not crowded, crowded


def test_no_module_is_over_400_lines() -> None:
    """A module a newcomer reads in one sitting (issue 26); the schema's declarative DDL
    is the one exception — it is the catalog's list of columns, each explained."""
    long = {str(path.relative_to(PACKAGE)): count for path in modules()
            if path.relative_to(PACKAGE) != Path("catalog/schema.py")
            and (count := len(path.read_text().splitlines())) > 400}
    assert not long, long


# What only SQLite says: its settings, its conflict clauses, its row ids and change
# counts, its own tables, full-text search
SQLITE_ONLY = re.compile(r"PRAGMA|OR REPLACE|OR IGNORE|last_insert_rowid|\.changes\(\)|"
                         r"sqlite_master|sqlite_sequence|\bMATCH\b|fts5|\binstr\(|\browid\b",
                         re.IGNORECASE)
# the engines (connection, transactions, migrations: catalog/engines/); the SQLite DDL;
# backups and salvage of its file; full-text search (FTS5 and PostgreSQL's, one module)
SQLITE_ENGINE = {"catalog/engines/sqlite.py", "catalog/engines/pgschema.py",
                 "catalog/engines/postgres.py", "catalog/engines/pgconnection.py",
                 "catalog/schema.py", "catalog/backups.py",
                 "catalog/salvage.py", "catalog/tables/search.py"}


def test_sqlite_only_sql_stays_in_the_sqlite_engine() -> None:
    """The rest of the catalog speaks SQL that PostgreSQL speaks too (ON CONFLICT,
    RETURNING; `Txn.insert` and `Txn.changed` for new ids and changed rows)."""
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}" for path in modules()
             if part_of(path) == "catalog"
             and str(path.relative_to(PACKAGE)) not in SQLITE_ENGINE
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if SQLITE_ONLY.search(line)]
    assert not found, "\n".join(found)


def test_no_test_module_imports_another() -> None:
    """What tests share lives in the helper modules of tests/ (conftest, harness,
    fixtures, servers, ...): a test module importing another depends on which layer's
    folder pytest happened to put on sys.path first."""
    tests = PACKAGE.parent / "tests"
    reaching = [f"{path.relative_to(tests)} imports {name}"
                for path in sorted(tests.glob("*/test_*.py")) for name in imports(path)
                if name.split(".")[0].startswith("test_")]
    assert not reaching, "\n".join(reaching)
