"""What fsck checks and repairs of views, tags and categories: each has its folder and
each such folder an owner; no pin, tag or assignment names a node that is gone."""

from __future__ import annotations

from markfs.catalog import nodes
from markfs.catalog.curation import categories, tags, views
from markfs.catalog.txn import Txn
from markfs.model import Kind, Node
from markfs.namespace.curation.definitions import new_folder
from markfs.namespace.tree import CATEGORIES_ID, EVERYTHING, TAGS_ID, VIEWS_ID, Tree


def _folders(tree: Tree) -> list[tuple[str, int, Kind]]:
    """(what, folder node id, kind) of every view, tag and category."""
    catalog = tree.catalog
    return ([(f"view {v.name!r}", v.node_id, Kind.VIEW) for v in catalog.views.all_views()]
            + [(f"tag {t!r}", n, Kind.TAG) for t, n in catalog.tags.all_folders()]
            + [(f"category {c.name!r}", c.node_id, Kind.CATEGORY)
               for c in catalog.categories.all_categories()])


def problems(tree: Tree) -> list[str]:
    """Views, tags and categories without their folder; folders of none of them;
    pins, tags and assignments of nodes that are gone."""
    catalog = tree.catalog
    out = [f"{what}: folder {node_id} missing" for what, node_id, _kind in _folders(tree)
           if tree.node(node_id) is None]
    owned = {node_id for _what, node_id, _kind in _folders(tree)}
    out += [f"folder {node.name!r} ({node.id}) of kind {node.kind.value} belongs to nothing"
            for node in _unowned(tree, owned)]
    for count, what in ((catalog.views.dangling_pins(), "pins"), (catalog.tags.dangling(), "tags"),
                        (catalog.categories.dangling_members(), "category assignments")):
        if count:
            out.append(f"{count} {what} of nodes that are gone")
    return out


def repair(tree: Tree) -> list[str]:
    """Folders made again, unowned ones removed, dangling rows dropped."""
    done = []
    with tree.transaction() as txn:
        views.drop_dangling_pins(txn)
        tags.drop_dangling(txn)
        categories.drop_dangling_members(txn)
        owned = set()
        for what, node_id, kind in _folders(tree):
            if tree.node(node_id) is None:
                node_id = _refolder(txn, tree, what, kind)
                done.append(f"re-created the folder of {what}")
            owned.add(node_id)
        for node in _unowned(tree, owned):
            nodes.delete_subtree(txn, node.id)
            done.append(f"removed folder {node.id}, which belonged to nothing")
    return done


def _unowned(tree: Tree, owned: set[int]) -> list[Node]:
    """Folders of views, tags or categories (by kind, where each kind lives) that no
    view, tag or category row names."""
    out = []
    for parent, kind in ((VIEWS_ID, Kind.VIEW), (TAGS_ID, Kind.TAG)):
        out += [n for _c, _name, n in tree.children(parent, 0, EVERYTHING)
                if n.kind is kind and n.id not in owned]
    queue = [CATEGORIES_ID]
    while queue:  # categories nest: every folder of kind 'category' has a row
        for _c, _name, n in tree.children(queue.pop(), 0, EVERYTHING):
            if n.kind is Kind.CATEGORY and n.id in owned:
                queue.append(n.id)
            elif n.kind is Kind.CATEGORY:
                out.append(n)
    return out


def _refolder(txn: Txn, tree: Tree, what: str, kind: Kind) -> int:
    catalog = tree.catalog
    if kind is Kind.VIEW:
        view = next(v for v in catalog.views.all_views() if what == f"view {v.name!r}")
        node_id = new_folder(txn, tree, VIEWS_ID, view.name.encode(), kind, b"")
        views.set_folder(txn, view.id, node_id)
    elif kind is Kind.TAG:
        tag = next(t for t, _n in catalog.tags.all_folders() if what == f"tag {t!r}")
        node_id = new_folder(txn, tree, TAGS_ID, tag.encode(), kind)
        tags.drop_folder(txn, tag)
        tags.set_folder(txn, tag, node_id)
    else:
        row = next(c for c in catalog.categories.all_categories() if what == f"category {c.name!r}")
        parent = CATEGORIES_ID if row.parent is None else next(
            c.node_id for c in catalog.categories.all_categories() if c.id == row.parent)
        node_id = new_folder(txn, tree, parent, row.name.encode(), kind)
        categories.set_folder(txn, row.id, node_id)
    return node_id
