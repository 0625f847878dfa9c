"""Rules and names of gathered folders (views, tags, categories), as pure functions.

A rule's glob is split into its fixed prefix (leading components without
wildcards) and the rest. A member keeps its path below the fixed prefix:
`finance/2024/**` shows `finance/2024/q1/a.csv` as `q1/a.csv`. `*`, `?` and
`[...]` match within one component, `**` spans any number of them.

Invariant (no member hides another): when several members would have the same
name in one folder, each gets a suffix naming its source (`a~lake.csv`,
`a~reports.csv`), and a further `~2`, `~3` when one source has several; the order
is by (source name, path), so the same members always get the same names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

from markfs.errors import UserError
from markfs.model import Node

WILDCARDS = frozenset(b"*?[")
SPAN = b"**"


class Place(Enum):
    """Where an entry of a source folder goes in a view."""

    NOTHING = 0  # not selected
    MEMBER = 1  # shown as itself (a file, or a folder matched by a glob not ending in **)
    FOLDER = 2  # a folder that may hold members: the view gets a folder of that name


@dataclass(frozen=True)
class Pattern:
    fixed: tuple[bytes, ...]  # leading literal components: where the members live
    rest: tuple[bytes, ...]  # the components that select them (never empty)

    @classmethod
    def parse(cls, glob: str) -> Pattern:
        """A rule's glob, or a one-line UserError for one that can match nothing."""
        parts = tuple(glob.encode().split(b"/"))
        if not glob or glob.startswith("/") or "\0" in glob:
            raise UserError(f"a rule's glob must be a relative path: {glob!r}")
        for part in parts:
            if part in (b"", b".", b".."):
                raise UserError(f"a glob cannot have empty, '.' or '..' parts: {glob!r}")
            if SPAN in part and part != SPAN:
                raise UserError(f"'**' must be a whole path part: {glob!r}")
            if not _brackets_closed(part):
                raise UserError(f"a '[' without its closing bracket in {glob!r} "
                                "(write [[] for a literal '[')")
        literal = 0
        while literal < len(parts) and not WILDCARDS & set(parts[literal]):
            literal += 1
        literal = min(literal, len(parts) - 1)  # a literal path: its last part selects it
        return cls(parts[:literal], parts[literal:])

    def matches(self, below: tuple[bytes, ...]) -> bool:
        """Does the path below the fixed prefix match the rest of the glob?"""
        return _matches(self.rest, below)

    def table_path(self, schema: bytes, table: bytes) -> tuple[bytes, ...]:
        """What a rule over an SQL source matches: TABLE for a one-part glob, else
        SCHEMA/TABLE (the whole glob, fixed prefix included)."""
        return (table,) if len(self.fixed) + len(self.rest) == 1 else (schema, table)

    def matches_table(self, schema: bytes, table: bytes) -> bool:
        return _matches(self.fixed + self.rest, self.table_path(schema, table))

    def may_hold(self, below: tuple[bytes, ...]) -> bool:
        """Could a folder at this path below the prefix hold a match?"""
        return _may_hold(self.rest, below)

    def spans(self) -> bool:
        """Ends in `**`: a matching folder is gathered into, not shown as one member."""
        return self.rest[-1] == SPAN

    def place(self, below: tuple[bytes, ...], is_dir: bool) -> Place:
        """What an entry at this path below the prefix is to a gathered folder."""
        selected = self.matches(below)
        if is_dir and (self.spans() or not selected) and self.may_hold(below):
            return Place.FOLDER
        return Place.MEMBER if selected else Place.NOTHING


def _brackets_closed(part: bytes) -> bool:
    """Does every '[' open a class that a ']' closes (as fnmatch reads one: a ']' right
    after '[' or '[!' is a member, not the end)?"""
    at = part.find(b"[")
    while at != -1:
        inside = at + 1 + (part[at + 1:at + 2] == b"!")
        inside += part[inside:inside + 1] == b"]"
        end = part.find(b"]", inside)
        if end == -1:
            return False
        at = part.find(b"[", end + 1)
    return True


def _matches(rest: tuple[bytes, ...], parts: tuple[bytes, ...]) -> bool:
    return len(rest) in _positions_after(rest, parts)


def _may_hold(rest: tuple[bytes, ...], parts: tuple[bytes, ...]) -> bool:
    """Could something below `parts` still match: is a part of the glob left over?"""
    return any(at < len(rest) for at in _positions_after(rest, parts))


def _positions_after(rest: tuple[bytes, ...], parts: tuple[bytes, ...]) -> set[int]:
    """Where in the glob a path may stand once `parts` are matched: every position at
    once, a step per path part (a `**` stays where it is or is passed over) — so a glob
    with many `**` costs parts x glob component matches, never a search of every way
    to split the path among them."""
    at = _passing_spans(rest, {0})
    for part in parts:
        at = _passing_spans(rest, {i if rest[i] == SPAN else i + 1 for i in at
                                   if i < len(rest) and (rest[i] == SPAN
                                                         or fnmatchcase(part, rest[i]))})
        if not at:
            break
    return at


def _passing_spans(rest: tuple[bytes, ...], at: set[int]) -> set[int]:
    """`at`, and each position after a `**` standing there (it may match nothing)."""
    out = set(at)
    for i in sorted(at):
        while i < len(rest) and rest[i] == SPAN:
            i += 1
            out.add(i)
    return out


@dataclass(frozen=True)
class Candidate:
    """Something that wants a name in a gathered folder."""

    name: bytes
    node: Node
    source: str  # source name, for the suffix
    path: bytes  # its path in the source, for the order among one source's members


def suffixed(name: bytes, label: str, is_dir: bool) -> bytes:
    """`report.csv` + `lake` -> `report~lake.csv` (folders and dot-files: at the end)."""
    stem, dot, ext = name.rpartition(b".")
    tag = b"~" + label.encode()
    if is_dir or not dot or not stem:
        return name + tag
    return stem + tag + b"." + ext


def assign_names(candidates: list[Candidate], taken: set[bytes]) -> dict[bytes, Node]:
    """Name -> node for one folder. The same node wanted twice is shown once; names in
    `taken` (the folder's own sub-folders) are never given to a member."""
    by_name: dict[bytes, dict[int, Candidate]] = defaultdict(dict)
    for c in candidates:
        by_name[c.name].setdefault(c.node.id, c)
    out: dict[bytes, Node] = {}
    for name, group in sorted(by_name.items()):
        if len(group) == 1 and name not in taken:
            out[name] = next(iter(group.values())).node
            continue
        ordered = sorted(group.values(), key=lambda c: (c.source, c.path, c.node.id))
        seen: dict[str, int] = defaultdict(int)
        for c in ordered:
            seen[c.source] += 1
            label = c.source if seen[c.source] == 1 else f"{c.source}~{seen[c.source]}"
            out[suffixed(name, label, c.node.is_dir)] = c.node
    return out
