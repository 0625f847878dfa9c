"""Scans of file sources (local, S3, SFTP): level 1 walks the tree, level 2 reads the
structured files in it.

Level 1 lists every folder once (pages, no per-file requests) and records
objects and bytes per top-level folder, the structured files with their
identity, and every name for search. Level 2 describes each structured file
whose identity changed since it was last described (`scan.files`), so an
unchanged file is never read again. Reads happen first, catalog writes after,
in short transactions. Everything blocks: the CLI calls it directly.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from markfs.backends.base import Backend
from markfs.catalog.sources import SourceRow
from markfs.catalog.tables import filescans
from markfs.catalog.tables import search as search_index
from markfs.identity import ContentIdentity, etag_of_scan_text
from markfs.namespace.tables.scans import tracked_job
from markfs.namespace.tree import Tree
from markfs.scan.files import describe, format_of
from markfs.values import json_default

Progress = Callable[[int, int], None]
MAX_INDEXED_NAMES = 200_000  # search rows per source; a bigger tree is indexed in part


@dataclass(frozen=True)
class FileScanReport:
    source: str
    files: int
    bytes: int
    structured: int
    deprecated: int
    described: int = 0  # level 2: files read now
    unchanged: int = 0  # level 2: files whose description is still current
    failed: int = 0  # level 2: files that could not be read as their format


def _identity(etag: bytes | None, size: int, mtime_ns: int) -> str:
    return ContentIdentity(etag, size, mtime_ns).scan_text


def walk(backend: Backend
         ) -> tuple[list[str], dict[str, tuple[int, int]], list[filescans.FoundFile]]:
    """Every path below the root, objects/bytes per top-level folder, structured files."""
    paths: list[str] = []
    prefixes: dict[str, tuple[int, int]] = {}
    found: list[filescans.FoundFile] = []
    pending = [b""]
    while pending:
        folder = pending.pop()
        for page in backend.list_pages(folder):
            for e in page:
                path = folder + b"/" + e.name if folder else e.name
                text = path.decode("utf-8", "replace")
                paths.append(text)
                if stat.S_ISDIR(e.mode):
                    pending.append(path)
                    continue
                top = text.split("/", 1)[0] if "/" in text else ""
                objects, size = prefixes.get(top, (0, 0))
                prefixes[top] = (objects + 1, size + e.size)
                fmt = format_of(text)
                if fmt is not None and stat.S_ISREG(e.mode):
                    found.append(filescans.FoundFile(text, _identity(e.etag, e.size, e.mtime_ns),
                                              e.size, fmt))
    return sorted(paths), prefixes, found


def scan_file_source(tree: Tree, row: SourceRow, backend: Backend) -> FileScanReport:
    """Level 1 of a file source."""
    with tracked_job(tree, "scan", row.name):
        paths, prefixes, found = walk(backend)
        now = time.time_ns()
        details = _column_words(tree, row.id)
        with tree.transaction() as txn:
            filescans.replace_prefixes(txn, row.id, prefixes, now)
            deprecated = filescans.record_found(txn, row.id, found, now)
            search_index.reindex_files(txn, row.id, row.name, paths[:MAX_INDEXED_NAMES], details)
    return FileScanReport(row.name, sum(o for o, _ in prefixes.values()),
                          sum(b for _, b in prefixes.values()), len(found), deprecated)


def _column_words(tree: Tree, source_id: int) -> dict[str, str]:
    """Column names of described files, so search finds a file by its columns."""
    out = {}
    for f in tree.catalog.file_scans.list_files(source_id):
        if f.schema_json:
            out[f.path] = " ".join(c["name"] for c in json.loads(f.schema_json))
    return out


def deep_scan_file_source(tree: Tree, row: SourceRow, backend: Backend,
                          progress: Progress | None = None) -> tuple[int, int, int]:
    """Level 2: describe structured files not yet described at their current identity.
    Returns (described, unchanged, failed)."""
    files = [f for f in tree.catalog.file_scans.list_files(row.id) if not f.deprecated]
    todo = [f for f in files if not f.scanned]
    failed = 0
    with tracked_job(tree, "deep-scan", row.name, len(todo)) as report:
        for done, f in enumerate(todo, 1):
            failed += not _describe_one(tree, backend, f)
            report(done)
            if progress is not None:
                progress(done, len(todo))
    return len(todo) - failed, len(files) - len(todo), failed


def _describe_one(tree: Tree, backend: Backend, f: filescans.StructuredFile) -> bool:
    try:
        facts = describe(backend, f.path.encode(), f.size, etag_of_scan_text(f.identity), f.format)
    except (ValueError, OSError) as exc:
        with tree.transaction() as txn:
            filescans.save_facts(txn, f.id, f.identity, None, False, None, None,
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False
    with tree.transaction() as txn:
        filescans.save_facts(txn, f.id, f.identity, facts.rows, facts.rows_exact,
                      json.dumps(facts.schema, ensure_ascii=False),
                      json.dumps(facts.stats, ensure_ascii=False, default=json_default), None)
    return True


