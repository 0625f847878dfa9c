"""What the daemon remembers stays bounded however long it runs (issue 26, part 5):
`RecentMap`, and the caches that use it, forgetting only what is safe to forget."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess import InProcess, names

from markfs.bounded import RecentMap
from markfs.namespace.files import listings


def test_a_recent_map_keeps_the_most_recently_set_entries() -> None:
    kept: RecentMap[int, str] = RecentMap(3)
    for key in range(10):
        kept[key] = str(key)
    assert list(kept) == [7, 8, 9]
    kept[8] = "again"  # setting an entry makes it the newest
    kept[10] = "10"
    assert list(kept.items()) == [(9, "9"), (8, "again"), (10, "10")]
    assert kept.get(7) is None and kept[9] == "9"
    with pytest.raises(ValueError):
        RecentMap(0)


def test_folders_listed_are_remembered_up_to_a_bound_and_a_forgotten_one_is_listed_again(
        data_dir: Path, backing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With listings trusted for an hour, only a folder the mount forgot shows a file
    added on the disk since: it is listed again, as after a remount."""
    monkeypatch.setattr(listings, "LISTINGS_KEPT", 4)
    for i in range(10):
        (backing / f"d{i}").mkdir()
    mount = InProcess(data_dir, dir_ttl=3600.0)
    try:
        async def body(ns: object) -> tuple[int, list[bytes], list[bytes]]:
            for i in range(10):
                await names(mount.ns, f"/sources/loc/d{i}")
            remembered = len(mount.ns.source_files.listings._listed)
            (backing / "d0" / "new.txt").write_bytes(b"added behind the mount's back")
            (backing / "d9" / "new.txt").write_bytes(b"added behind the mount's back")
            return (remembered, await names(mount.ns, "/sources/loc/d0"),
                    await names(mount.ns, "/sources/loc/d9"))

        remembered, forgotten, recent = mount.run(body)  # type: ignore[arg-type]
    finally:
        mount.close()
    assert remembered == 4
    assert forgotten == [b"new.txt"]  # d0 was forgotten: listed again
    assert recent == []  # d9's listing is still trusted (dir_ttl): not listed again
