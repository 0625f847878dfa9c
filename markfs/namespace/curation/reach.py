"""Who may see a gathered entry: only a caller who could reach it through its source.

A member of a view, tag or category is its source's own node, shown without the
folders above it, so the kernel never checks those folders: alice's 0644 `plans.txt`
inside her 0700 folder would be bob's to read through `/views/v/plans.txt`. So a
gathered folder shows a member (lookup, readdir) only to a caller who has search
permission on every folder above the member, as the kernel would check them on the
way through `/sources/...` or `/tables/...` — with the owners and modes the mount
shows (`ownership`), by POSIX's classes (owner, else group — the caller's group or
one of its supplementary groups — else others). Root reaches everything.

The caller's supplementary groups are not in a FUSE request: they are read from
`/proc/<tid>/status` of the calling thread, only when a folder's group decides.
"""

from __future__ import annotations

import stat
from collections.abc import Callable

from markfs.model import Kind, Node
from markfs.namespace.provider import Caller

GATHERED = frozenset({Kind.VIEW, Kind.TAG, Kind.CATEGORY})  # folders shown per caller

ROOT_UID = 0


def groups_of(tid: int) -> frozenset[int]:
    """The supplementary groups of a calling thread (empty if it is gone)."""
    try:
        with open(f"/proc/{tid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return frozenset()


class Reach:
    """One caller's view of the tree; remembers each folder it judged (it lives for
    one request: modes may change between requests)."""

    def __init__(self, caller: Caller, node: Callable[[int], Node | None],
                 shown: Callable[[Node], tuple[int, int, int]]) -> None:
        self.caller = caller
        self._node = node  # a node of the catalog by id (None: gone)
        self._shown = shown  # (mode, uid, gid) as the kernel is told them
        self._reachable: dict[int, bool] = {}  # folder id -> may the caller get into it
        self._groups: frozenset[int] | None = None

    def reaches(self, member: Node) -> bool:
        """May the caller walk from the root to `member` (search every folder above)?"""
        if self.caller.uid == ROOT_UID:
            return True
        seen: list[int] = []  # folders searchable in themselves, on the way up
        folder_id, answer = member.parent, True
        while folder_id not in self._reachable:
            folder = self._node(folder_id)
            if folder is None or not self._may_search(folder):
                answer = False
                break
            seen.append(folder_id)
            if folder.parent == folder.id:  # the root
                break
            folder_id = folder.parent
        else:
            answer = self._reachable[folder_id]
        for judged in seen:  # each folder on the way is as reachable as the rest above it
            self._reachable[judged] = answer
        if not answer:
            self._reachable[folder_id] = False
        return answer

    def _may_search(self, folder: Node) -> bool:
        mode, uid, gid = self._shown(folder)
        if uid == self.caller.uid:
            return bool(mode & stat.S_IXUSR)
        if gid == self.caller.gid or gid in self._caller_groups():
            return bool(mode & stat.S_IXGRP)
        return bool(mode & stat.S_IXOTH)

    def _caller_groups(self) -> frozenset[int]:
        if self._groups is None:
            self._groups = groups_of(self.caller.pid) if self.caller.pid else frozenset()
        return self._groups


def hidden(folder: Node, child: Node, reach: Reach) -> bool:
    """A member of a gathered folder (not one of its own folders) the caller could not
    reach through its source's folders."""
    return folder.kind in GATHERED and child.kind is not folder.kind and not reach.reaches(child)
