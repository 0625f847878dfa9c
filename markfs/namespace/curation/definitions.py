"""Defining views, tags and categories: what `markfs view/tag/category` and the
`user.markfs.tags` xattr change in the catalog, with the checks that keep bad input out;
and finding them again (`markfs search`). Paths given by users are mount paths
(`mountpaths.resolve`)."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from markfs.catalog import nodes
from markfs.catalog.curation import categories, tags, views
from markfs.catalog.sources import SourceRow
from markfs.catalog.tables.search import Hit
from markfs.catalog.txn import Txn
from markfs.errors import UserError
from markfs.model import Kind, Node
from markfs.namespace.curation.membership import Pattern, Place
from markfs.namespace.files.sources import SourceSet, is_sql, list_sources, require_source
from markfs.namespace.mountpaths import list_now, mount_path, resolve
from markfs.namespace.tree import (
    CATEGORIES_ID,
    EVERYTHING,
    SOURCES_ID,
    TABLES_ID,
    TAGS_ID,
    VIEWS_ID,
    Tree,
    folder_name,
)

FOLDER_MODE = stat.S_IFDIR | 0o755


def check_folder_name(kind: str, name: str, extra: str = "") -> bytes:
    """A name that becomes one folder of the mount."""
    raw = name.encode()
    bad = {"/", "\0", *extra}
    if not name.strip() or name in (".", "..") or len(raw) > 255 or bad & set(name):
        shown = "', '".join(sorted(c for c in bad if c != "\0"))
        raise UserError(f"invalid {kind} name {name!r}: 1-255 bytes, no '{shown}' or NUL")
    return raw


def new_folder(txn: Txn, tree: Tree, parent: int, name: bytes, kind: Kind,
                remote_path: bytes | None = None) -> int:
    now = time.time_ns()
    new = nodes.NewNode(kind, FOLDER_MODE, os.getuid(), os.getgid(), 0, now, now, nlink=2,
                        remote_path=remote_path)
    return nodes.insert_node(txn, parent, name, new, generation=tree.generation)


def _each(tree: Tree, targets: list[Node], change: Callable[[Txn, int], bool]) -> int:
    """One change per node, in one transaction; how many changed anything."""
    with tree.transaction() as txn:
        return sum(change(txn, node.id) for node in targets)


def _gatherable(tree: Tree, sources: SourceSet, path: str) -> Node:
    node = resolve(tree, sources, path)
    if node.kind not in (Kind.SOURCE, Kind.TABLE) or node.id == SOURCES_ID:
        raise UserError(f"only files and folders of sources and tables can be gathered: "
                        f"{path}")
    return node


# -- views ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ViewSummary:
    name: str
    rules: list[str]
    landing: str | None
    pins: list[str]
    members: int
    bytes: int  # of member files (a member folder counts as a member, not its bytes)


def parse_rule(tree: Tree, text: str) -> views.Rule:
    source, sep, glob = text.partition(":")
    if not sep:
        raise UserError(f"a rule is SOURCE:GLOB, not {text!r}")
    row = require_source(tree, source)
    Pattern.parse(glob)
    if is_sql(row) and glob.count("/") > 1:
        raise UserError(f"a rule over SQL source {source!r} selects SCHEMA/TABLE: {glob!r}")
    return views.Rule(row.id, glob)


def add_view(tree: Tree, sources: SourceSet, name: str, rules: list[str],
             landing: str | None) -> None:
    raw = check_folder_name("view", name)
    parsed = [parse_rule(tree, text) for text in rules]
    where = _landing(tree, sources, landing) if landing else None
    if tree.catalog.views.get_view(name) is not None:
        raise UserError(f"a view named {name!r} exists already")
    with tree.transaction() as txn:
        node_id = new_folder(txn, tree, VIEWS_ID, raw, Kind.VIEW, remote_path=b"")
        views.insert_view(txn, name, node_id, where, parsed)


def _landing(tree: Tree, sources: SourceSet, text: str) -> tuple[int, str]:
    source, _, path = text.strip("/").partition("/")
    row = require_source(tree, source)
    if is_sql(row) or row.read_only:
        raise UserError(f"the landing must be in a writable file source; {source!r} is "
                        f"{'an SQL source' if is_sql(row) else 'read-only'}")
    folder = resolve(tree, sources, f"/sources/{source}/{path}")
    if not folder.is_dir:
        raise UserError(f"the landing must be a folder: {text}")
    return row.id, path.strip("/")


def require_view(tree: Tree, name: str) -> views.ViewRow:
    view = tree.catalog.views.get_view(name)
    if view is None:
        raise UserError(f"unknown view: {name!r}")
    return view


def remove_view(tree: Tree, name: str) -> None:
    view = require_view(tree, name)
    with tree.transaction() as txn:
        views.delete_view(txn, view.id)
        nodes.delete_subtree(txn, view.node_id)


def pin(tree: Tree, sources: SourceSet, name: str, paths: list[str], on: bool) -> int:
    """Pin (or unpin) members; how many changed."""
    view = require_view(tree, name)
    change = views.pin if on else views.unpin
    return _each(tree, [_gatherable(tree, sources, p) for p in paths],
                 lambda txn, node_id: change(txn, view.id, node_id))


def all_views(tree: Tree) -> list[views.ViewRow]:
    return tree.catalog.views.all_views()


def summary(tree: Tree, sources: SourceSet, name: str) -> ViewSummary:
    """What a view holds now: its rules' folders are listed from the sources (like du)."""
    view = require_view(tree, name)
    catalog = tree.catalog
    rules = catalog.views.rules_of(view.id)
    rows = {r.id: r for r in list_sources(tree)}
    members: dict[int, Node] = {}
    for rule in rules:
        row = rows.get(rule.source_id)
        if row is not None:
            members.update(_members(tree, sources, row, Pattern.parse(rule.glob)))
    pins = [n for i in catalog.views.pins_of(view.id) if (n := tree.node(i)) is not None]
    members.update((n.id, n) for n in pins)
    landing = None
    if view.landing_source_id is not None and view.landing_source_id in rows:
        landing = f"{rows[view.landing_source_id].name}/{view.landing_path}".rstrip("/")
    return ViewSummary(
        view.name, [f"{rows[r.source_id].name}:{r.glob}" for r in rules if r.source_id in rows],
        landing, [mount_path(tree, n) for n in pins], len(members),
        sum(n.size for n in members.values() if not n.is_dir))


def _members(tree: Tree, sources: SourceSet, row: SourceRow,
             pattern: Pattern) -> dict[int, Node]:
    """Members of one rule: file sources are walked below the rule's fixed folder, only
    into folders that may hold matches; SQL sources give their managed tables' folders."""
    if is_sql(row):
        return {node.id: node for _path, node in table_members(tree, row, pattern)}
    fixed = "/".join(p.decode() for p in pattern.fixed)
    try:
        top = resolve(tree, sources, f"/sources/{row.name}/{fixed}")
    except UserError:
        return {}
    out: dict[int, Node] = {}
    queue: list[tuple[Node, tuple[bytes, ...]]] = [(top, ())] if top.is_dir else []
    while queue:
        folder, below = queue.pop()
        list_now(tree, sources, folder)
        for _c, name, child in tree.children(folder.id, 0, EVERYTHING):
            place = pattern.place((*below, name), child.is_dir)
            if place is Place.FOLDER:
                queue.append((child, (*below, name)))
            elif place is Place.MEMBER:
                out[child.id] = child
    return out


def table_members(tree: Tree, row: SourceRow, pattern: Pattern) -> list[tuple[bytes, Node]]:
    """(SCHEMA/TABLE, folder) of the managed tables of an SQL source a rule selects."""
    root = tree.child(TABLES_ID, folder_name(row.name))
    out = []
    for _c, schema, schema_node in tree.children(root.id, 0, EVERYTHING) if root else []:
        for _c2, table, node in tree.children(schema_node.id, 0, EVERYTHING):
            if pattern.matches_table(schema, table):
                out.append((schema + b"/" + table, node))
    return out


# -- tags -------------------------------------------------------------------------------------

def check_tag(tag: str) -> str:
    check_folder_name("tag", tag.strip(), extra=",")
    return tag.strip()


def set_tags(tree: Tree, node: Node, wanted: list[str]) -> None:
    """Exactly these tags on the node (the xattr's meaning)."""
    wanted = sorted({check_tag(t) for t in wanted if t.strip()})
    current = tree.catalog.tags.tags_of(node.id)
    with tree.transaction() as txn:
        for tag in sorted(set(current) - set(wanted)):
            tags.remove_tag(txn, node.id, tag)
        for tag in sorted(set(wanted) - set(current)):
            _tag(txn, tree, node.id, tag)
        _drop_unused_tag_folders(txn)


def tag_paths(tree: Tree, sources: SourceSet, tag: str, paths: list[str], on: bool) -> int:
    tag = check_tag(tag)
    targets = [_gatherable(tree, sources, p) for p in paths]
    if not on and tree.catalog.tags.folder_of(tag) is None:
        raise UserError(f"unknown tag: {tag!r}")
    changed = 0
    with tree.transaction() as txn:
        for node in targets:
            changed += _tag(txn, tree, node.id, tag) if on else tags.remove_tag(txn, node.id, tag)
        _drop_unused_tag_folders(txn)
    return changed


def _tag(txn: Txn, tree: Tree, node_id: int, tag: str) -> bool:
    if tags.folder_of(txn, tag) is None:
        tags.set_folder(txn, tag, new_folder(txn, tree, TAGS_ID, tag.encode(), Kind.TAG))
    return tags.add_tag(txn, node_id, tag)


def _drop_unused_tag_folders(txn: Txn) -> None:
    for tag, folder in tags.unused_folders(txn):
        tags.drop_folder(txn, tag)
        nodes.delete_subtree(txn, folder)


def tags_of(tree: Tree, node: Node) -> list[str]:
    return tree.catalog.tags.tags_of(node.id)


def all_tags(tree: Tree) -> list[tuple[str, int]]:
    return tree.catalog.tags.all_tags()


def tagged(tree: Tree, tag: str) -> list[str]:
    return sorted(mount_path(tree, n) for i in tree.catalog.tags.nodes_tagged(tag)
                  if (n := tree.node(i)) is not None)


# -- categories ---------------------------------------------------------------------------------

def _category_parts(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise UserError("a category path names at least one folder: finance/2024/audit")
    for part in parts:
        check_folder_name("category", part)
    return parts


def find_category(tree: Tree, path: str) -> categories.CategoryRow:
    row = None
    for part in _category_parts(path):
        row = tree.catalog.categories.find(row.id if row else None, part)
        if row is None:
            raise UserError(f"unknown category: {path.strip('/')!r}")
    assert row is not None
    return row


def add_category(tree: Tree, path: str) -> bool:
    """Make the category and any missing parents; False if it existed."""
    made = False
    with tree.transaction() as txn:
        parent: categories.CategoryRow | None = None
        for part in _category_parts(path):
            row = categories.find(txn, parent.id if parent else None, part)
            if row is None:
                folder = new_folder(txn, tree, parent.node_id if parent else CATEGORIES_ID,
                                     part.encode(), Kind.CATEGORY)
                category_id = categories.insert(txn, parent.id if parent else None, part,
                                                folder)
                row = categories.CategoryRow(category_id, parent.id if parent else None, part,
                                             folder)
                made = True
            parent = row
    return made


def remove_category(tree: Tree, path: str) -> None:
    """The category and its sub-categories; their files stay where they are."""
    row = find_category(tree, path)
    with tree.transaction() as txn:
        categories.delete(txn, row.id)
        nodes.delete_subtree(txn, row.node_id)


def assign(tree: Tree, sources: SourceSet, path: str, files: list[str], on: bool) -> int:
    row = find_category(tree, path)
    change = categories.assign if on else categories.unassign
    return _each(tree, [_gatherable(tree, sources, p) for p in files],
                 lambda txn, node_id: change(txn, row.id, node_id))


def all_categories(tree: Tree) -> list[tuple[str, int]]:
    """(category path, files assigned) for every category, by path."""
    catalog = tree.catalog
    rows = {r.id: r for r in catalog.categories.all_categories()}

    def path_of(row: categories.CategoryRow) -> str:
        return row.name if row.parent is None else f"{path_of(rows[row.parent])}/{row.name}"
    return sorted((path_of(r), len(catalog.categories.members(r.id))) for r in rows.values())


# -- search ------------------------------------------------------------------------------------

def find(tree: Tree, text: str) -> list[Hit]:
    """Views by name and rule, and files by tag and category: every word of `text` must
    begin a word of what is searched, as in the full-text index."""
    wanted = [w.lower() for w in re.findall(r"\w+", text)]
    if not wanted:
        return []

    def hit(*haystack: str) -> bool:
        words = {w.lower() for h in haystack for w in re.findall(r"\w+", h)}
        return all(any(w.startswith(x) for w in words) for x in wanted)

    catalog = tree.catalog
    names = {r.id: r.name for r in list_sources(tree)}
    out: list[Hit] = []
    for view in catalog.views.all_views():
        rules = [f"{names.get(r.source_id, '?')}:{r.glob}" for r in catalog.views.rules_of(view.id)]
        if hit(view.name, *rules):
            out.append(Hit(f"/views/{view.name}", "view", view.name, " ".join(rules)))
    for name, _count in catalog.tags.all_tags():
        if hit(name):
            out += [Hit(path, "tagged", name, "") for path in tagged(tree, name)]
    for path, _count in all_categories(tree):
        if hit(path):
            row = find_category(tree, path)
            out += [Hit(mount_path(tree, n), "in category", path, "")
                    for i in catalog.categories.members(row.id) if (n := tree.node(i))]
    return out
