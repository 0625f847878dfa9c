"""A local source is never left through a symlink (issue 23, part 1).

The daemon runs as root; a user who may write a folder of a local source swaps a
folder (or a file) for a symlink to a root-only place between the mount's lookup and
its next call. Whatever that user then does through the mount — read, write, chmod,
chown, truncate, utime, unlink, rename, mkdir, create, link, symlink, mkfifo, xattrs —
must never reach the place outside the source: its entries, bytes, modes, owners,
times and xattrs stay as they were, and nothing of it is shown. A long path built one
folder at a time works as on the disk (the same walk from the source root)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Mount, add_source_now, in_process
from users import ALICE, Seen, alice, outcome

SECRET = b"TOPSECRET-outside-the-source"
TRIES = 8  # each try a fresh folder; the swap comes microseconds before the call


@dataclass
class Place:
    base: Path  # 0755: alice's children start here (pytest's tmp above is 0700)
    backing: Path  # the local source's directory
    mounted: Path  # the same folder through the mount


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    base = tmp_path_factory.mktemp("escape")
    os.chmod(base, 0o755)
    data_dir, backing, point = base / "data", base / "backing", base / "mnt"
    in_process(lambda tree: None, data_dir)
    for folder in (backing, point):
        folder.mkdir(mode=0o755)
    own = backing / "alice"
    own.mkdir(mode=0o755)
    os.chown(own, ALICE, ALICE)
    add_source_now(data_dir, "loc", f"file://{backing}")
    mount = Mount(data_dir, point).start("--allow-other")
    try:
        yield Place(base, own, point / "sources" / "loc" / "alice")
    finally:
        mount.stop()
    mount.assert_log_clean()


def outside_place(base: Path, name: str) -> Path:
    """A root-only folder outside the source with a root-only file in it."""
    outside = base / f"outside-{name}"
    outside.mkdir(mode=0o700)
    secret = outside / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    os.setxattr(secret, "user.keep", SECRET)
    os.utime(secret, ns=(10**18, 10**18))
    return outside


def state(folder: Path) -> dict[str, object]:
    """Everything a call could have changed in `folder` (and the folder itself; not
    atimes: this reading moves them)."""
    found: dict[str, object] = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(path.relative_to(folder))] = (
            oct(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
            content,
            sorted(os.listxattr(path, follow_symlinks=False)), st.st_nlink)
    return found


Call = Callable[[Path], object]  # given the mounted folder that was swapped


def read(folder: Path) -> object:
    """O_DIRECT: the kernel still holds the decoy's pages written a moment ago."""
    fd = os.open(folder / "secret", os.O_RDONLY | os.O_DIRECT)
    try:
        return Seen(os.read(fd, 4096))
    finally:
        os.close(fd)


def getxattr(folder: Path) -> object:
    return Seen((os.getxattr(folder / "secret", "user.keep"),
                 os.listxattr(folder / "secret")))


CALLS: dict[str, Call] = {
    "read": read,
    "write": lambda f: (f / "secret").open("ab").write(b"appended"),
    "chmod": lambda f: os.chmod(f / "secret", 0o666),
    "chown": lambda f: os.chown(f / "secret", ALICE, ALICE),
    "truncate": lambda f: os.truncate(f / "secret", 0),
    "open-trunc": lambda f: (f / "secret").open("wb").close(),
    "utime": lambda f: os.utime(f / "secret", ns=(10**9, 10**9)),
    "unlink": lambda f: os.unlink(f / "secret"),
    "rename": lambda f: os.rename(f / "secret", f / "moved"),
    "mkdir": lambda f: os.mkdir(f / "made"),
    "create": lambda f: (f / "made-file").open("xb").close(),
    "link": lambda f: os.link(f / "secret", f / "hard"),
    "symlink": lambda f: os.symlink("anywhere", f / "sym"),
    "mkfifo": lambda f: os.mkfifo(f / "fifo"),
    "setxattr": lambda f: os.setxattr(f / "secret", "user.evil", b"1"),
    "removexattr": lambda f: os.removexattr(f / "secret", "user.keep"),
    "getxattr": getxattr,
}
# calls that name the file itself (the other shape swaps the file for a link)
ON_THE_FILE = ("read", "write", "chmod", "chown", "truncate", "open-trunc", "utime",
               "setxattr", "removexattr", "getxattr")


def attack(place: Place, outside: Path, name: str, shape: str,
           call: Call) -> Callable[[], object]:
    """As alice: make a folder with a file through the mount (so the mount knows both),
    swap the folder — or the file — on the disk for a symlink to the outside, and call
    through the mount at once."""
    def step() -> object:
        # paths from place.base: the folders above it are 0700
        mounted = place.mounted.relative_to(place.base) / name
        disk = place.backing.relative_to(place.base) / name
        os.mkdir(mounted)
        (mounted / "secret").write_bytes(b"decoy")
        os.setxattr(mounted / "secret", "user.keep", b"decoy")
        if shape == "folder":
            os.rename(disk, disk.with_name(name + ".old"))
            os.symlink(outside, disk)
        else:
            os.rename(disk / "secret", disk / "secret.old")
            os.symlink(outside / "secret", disk / "secret")
        return call(mounted)
    return step


@pytest.mark.parametrize("shape,name", [("folder", n) for n in CALLS]
                         + [("file", n) for n in ON_THE_FILE])
def test_a_swapped_in_symlink_never_lets_a_call_out_of_the_source(
        place: Place, shape: str, name: str) -> None:
    outside = outside_place(place.base, f"{shape}-{name}")
    before = state(outside)
    answers = [outcome(alice, place.base, attack(place, outside, f"{shape}-{name}-{n}",
                                                  shape, CALLS[name]))
               for n in range(TRIES)]
    assert state(outside) == before, answers
    assert not any(SECRET[:5].decode() in a for a in answers), answers


# -- long paths: the walk from the source root has no PATH_MAX ----------------------

LEVEL = b"d" * 200
DEPTH = 30  # 30 x 201 bytes: a path of 6,030 bytes below the folder


def deep_steps() -> object:
    """Build a path of 6,030 bytes one folder at a time (each call relative to the
    current folder, as a shell's `cd` makes it), use a file at its bottom, then take
    it all apart: every step's outcome."""
    seen: list[object] = []

    def step(what: str, call: Callable[[], object]) -> None:
        try:
            seen.append((what, call()))
        except OSError as exc:
            seen.append((what, os.strerror(exc.errno or 0)))

    for _ in range(DEPTH):
        step("mkdir", lambda: os.mkdir(LEVEL, 0o755))
        step("chdir", lambda: os.chdir(LEVEL))
    step("create", lambda: Path("f").write_bytes(b"deep bytes"))
    step("read", lambda: Path("f").read_bytes())
    step("stat", lambda: (stat.filemode(os.stat(b"f").st_mode), os.stat(b"f").st_size))
    step("chmod", lambda: os.chmod(b"f", 0o600))
    step("utime", lambda: os.utime(b"f", ns=(10**9, 2 * 10**9)))
    step("times", lambda: os.stat(b"f").st_mtime_ns)
    step("xattr", lambda: os.setxattr(b"f", b"user.deep", b"1"))
    step("xattrs", lambda: os.listxattr(b"f"))
    step("link", lambda: os.link(b"f", b"g"))
    step("symlink", lambda: os.symlink(b"f", b"s"))
    step("readlink", lambda: os.readlink(b"s"))
    step("rename", lambda: os.rename(b"g", b"h"))
    step("list", lambda: sorted(os.listdir(b".")))
    step("truncate", lambda: os.truncate(b"f", 4))
    step("read again", lambda: Path("h").read_bytes())
    for name in ("f", "h", "s"):
        step(f"unlink {name}", lambda name=name: os.unlink(name))  # type: ignore[misc]
    for _ in range(DEPTH):
        step("up", lambda: os.chdir(b".."))
        step("rmdir", lambda: os.rmdir(LEVEL))
    step("empty", lambda: os.listdir(b"."))
    return Seen(seen)


def test_a_path_longer_than_path_max_built_a_folder_at_a_time_works_as_on_the_disk(
        place: Place) -> None:
    disk = place.base / "deep-disk"
    disk.mkdir()
    os.chmod(disk, 0o777)
    mounted = place.mounted / "deep"
    mounted.mkdir()
    os.chmod(mounted, 0o777)  # (the daemon made it: root's)
    on_disk = outcome(alice, disk, deep_steps)
    in_mount = outcome(alice, mounted, deep_steps)
    assert "b'deep bytes'" in on_disk and "File name too long" not in on_disk, on_disk
    assert in_mount == on_disk




@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "openat-per-folder"])
def test_the_walk_refuses_a_symlinked_folder_and_has_no_path_max(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool) -> None:
    """Both walks (openat2, and a folder at a time where a kernel lacks it), in process."""
    from markfs.backends import beneath
    from markfs.backends.local import LocalBackend

    monkeypatch.setattr(beneath, "_openat2_missing", not openat2)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_bytes(b"outside")
    (root / "link").symlink_to(outside)
    backend = LocalBackend(root)
    for call in (lambda: backend.stat(b"link/f"), lambda: backend.read_range(b"link/f", 0, 9, None),
                 lambda: backend.unlink(b"link/f"), lambda: backend.chmod(b"link/f", 0o777)):
        with pytest.raises(OSError) as refused:
            call()
        assert refused.value.errno == errno.ENOENT
    assert backend.stat(b"link").target == os.fsencode(outside)  # the link itself
    deep = b"/".join([b"real"] + [b"x" * 250] * 20)  # 5,000+ bytes below the root
    for depth in range(2, 22):
        backend.mkdir(b"/".join(deep.split(b"/")[:depth]), 0o755)
    backend.create(deep + b"/file", 0o644, os.O_WRONLY, True).close()
    assert backend.stat(deep + b"/file").size == 0
    assert (outside / "f").read_bytes() == b"outside"
