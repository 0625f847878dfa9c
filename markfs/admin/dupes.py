"""Identical files across file sources (`markfs dupes`), as a duplicate finder does it:
every file of the sources is listed, only files sharing a size are read, and each is
read once — its xxh3-128 digest is kept in the catalog (`content_hashes`) under the
file's content identity (S3 ETag, SFTP size+mtime, local size+mtime), so a later run
reads only what changed. Everything blocks: the CLI calls it directly.
"""

from __future__ import annotations

import stat
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import xxhash

from markfs.backends.base import Backend
from markfs.catalog.sources import SourceRow
from markfs.errors import UserError
from markfs.namespace.files.sources import SourceSet, is_sql, list_sources
from markfs.namespace.listing import valid_name
from markfs.namespace.tree import Tree

Progress = Callable[[int, int], None]  # (files hashed so far, files to hash)


@dataclass(frozen=True)
class SourceFile:
    source: SourceRow
    path: bytes  # inside the source
    size: int
    identity: bytes  # the listing's content identity: what the recorded digest is of
    etag: bytes | None  # what a read may insist on (S3 If-Match, SFTP size+mtime)

    @property
    def mount_path(self) -> str:
        return f"/sources/{self.source.name}/{self.path.decode(errors='replace')}"


@dataclass(frozen=True)
class Identical:
    digest: str  # xxh3-128, hex
    size: int
    paths: list[str]  # mount paths, sorted


def find_identical(tree: Tree, sources: SourceSet, names: list[str],
                   progress: Progress | None = None) -> list[Identical]:
    """Groups of identical non-empty files in the named file sources (all when none),
    largest first."""
    by_size: dict[int, list[SourceFile]] = defaultdict(list)
    for row in _file_sources(tree, names):
        for found in _walk(row, _backend(sources, row)):
            by_size[found.size].append(found)
    candidates = [f for group in by_size.values() if len(group) > 1 for f in group]
    by_digest: dict[tuple[int, str], list[str]] = defaultdict(list)
    for done, found in enumerate(candidates, 1):
        digest = _digest(tree, _backend(sources, found.source), found)
        by_digest[(found.size, digest)].append(found.mount_path)
        if progress is not None:
            progress(done, len(candidates))
    groups = [Identical(digest, size, sorted(paths))
              for (size, digest), paths in by_digest.items() if len(paths) > 1]
    return sorted(groups, key=lambda g: (-g.size, g.paths))


def _file_sources(tree: Tree, names: list[str]) -> list[SourceRow]:
    rows = {row.name: row for row in list_sources(tree) if not is_sql(row)}
    for name in names:
        if name not in rows:
            raise UserError(f"no file source named {name!r} (markfs source list)")
    return [rows[name] for name in names] if names else list(rows.values())


def _backend(sources: SourceSet, row: SourceRow) -> Backend:
    backend = sources.backend(row.id)
    assert backend is not None  # the row was just read from the catalog
    return backend


def _walk(row: SourceRow, backend: Backend) -> Iterator[SourceFile]:
    """Every non-empty regular file below the source's root, folder by folder."""
    folders = [b""]
    while folders:
        folder = folders.pop()
        try:
            pages = list(backend.list_pages(folder))
        except OSError as exc:
            raise UserError(f"cannot list {row.name}:{folder.decode(errors='replace')}: "
                            f"{exc.strerror}") from None
        for entry in (e for page in pages for e in page if valid_name(e.name)):
            path = folder + b"/" + entry.name if folder else entry.name
            if stat.S_ISDIR(entry.mode):
                folders.append(path)
            elif stat.S_ISREG(entry.mode) and entry.size > 0:
                yield SourceFile(row, path, entry.size, entry.identity, entry.etag)


def _digest(tree: Tree, backend: Backend, found: SourceFile) -> str:
    """The file's recorded digest, or its bytes read now and hashed (then recorded)."""
    digest = tree.recorded_digest(found.source.id, found.path, found.identity)
    if digest is not None:
        return digest
    hasher = xxhash.xxh3_128()
    try:
        for piece in backend.read_stream(found.path, 0, found.size, found.etag):
            hasher.update(piece)
    except OSError as exc:  # ESTALE: it changed since the listing
        raise UserError(f"cannot read {found.mount_path}: {exc.strerror}") from None
    digest = hasher.hexdigest()
    with tree.transaction() as txn:
        tree.catalog.content_hashes.record(txn, found.source.id, found.path, found.identity,
                                           found.size, digest)
    return digest
