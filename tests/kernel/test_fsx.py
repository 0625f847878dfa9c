"""fsx-style random operations, mirrored on a plain directory and compared after each step.

Every operation runs on the mount and on a reference directory of the host
filesystem; both must succeed alike or fail with the same errno, and the
touched path must then look the same (content, size, type, mode). The whole
tree is compared every 100 operations and at the end. On a local source every
operation is drawn; on S3 and SFTP those the storage has (S3: no links, no modes;
SFTP: no hard links).
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Mount
from remote_helpers import mount_remote, source_for

SEED = 20261122
# `make test` runs the first 2,500 operations of the sequence; `make test-long` all 8,000
OPERATIONS = 8000 if os.environ.get("MARKFS_TEST_LONG") == "1" else 2500
# on S3 and SFTP (each close is an upload): `make test` 300, `make test-long` 3,000
REMOTE_OPERATIONS = 3000 if os.environ.get("MARKFS_TEST_LONG") == "1" else 300
WITHOUT = {"local": set(), "s3": {"link", "symlink", "chmod"}, "sftp": {"link"}}
NAMES = ["a", "b", "c", "d", "e"]
MAX_SIZE = 300_000


class Mirror:
    def __init__(self, mounted: Path, reference: Path, rng: random.Random,
                 without: set[str] | frozenset[str] = frozenset()) -> None:
        self.roots = (mounted, reference)
        self.rng = rng
        self.without = without  # operations the storage has not
        self.last = ""

    def rel(self, depth: int = 2) -> str:
        parts = [self.rng.choice(NAMES) for _ in range(self.rng.randint(1, depth))]
        return "/".join(parts)

    def both(self, op: Callable[[Path], object]) -> bool:
        """Run on both trees; True if the operation succeeded."""
        results = []
        for root in self.roots:
            try:
                results.append(("ok", op(root)))
            except OSError as exc:
                results.append(("err", exc.errno))
        assert results[0] == results[1], (
            f"after {self.last}: mount {results[0]} != reference {results[1]}")
        return results[0][0] == "ok"

    def step(self) -> tuple[str, bool]:
        rel, other = self.rel(), self.rel()
        data = self.rng.randbytes(self.rng.choice([0, 1, 100, 4096, 70_000]))
        offset = self.rng.randrange(MAX_SIZE)
        size = self.rng.randrange(MAX_SIZE)
        mode = self.rng.choice([0o600, 0o644, 0o755])
        ops: dict[str, Callable[[Path], object]] = {
            "create": lambda r: (r / rel).write_bytes(data),
            "write": lambda r: _pwrite(r / rel, offset, data),
            "append": lambda r: _append(r / rel, data),
            "truncate": lambda r: os.truncate(r / rel, size),
            "read": lambda r: hashlib.sha1((r / rel).read_bytes()).hexdigest(),
            "mkdir": lambda r: os.mkdir(r / rel),
            "rmdir": lambda r: os.rmdir(r / rel),
            "unlink": lambda r: os.unlink(r / rel),
            "rename": lambda r: os.rename(r / rel, r / other),
            "link": lambda r: os.link(r / rel, r / other),
            "symlink": lambda r: os.symlink(other, r / rel),
            "chmod": lambda r: os.chmod(r / rel, mode),
            "listdir": lambda r: sorted(os.listdir(r / rel)),
        }
        name = self.rng.choice([op for op in ops if op not in self.without])
        self.last = f"{name} {rel} {other} off={offset} size={size} len={len(data)}"
        ok = self.both(ops[name])
        self.both(lambda r: describe(r / rel))
        self.both(lambda r: describe(r / other))
        return name, ok


def _pwrite(path: Path, offset: int, data: bytes) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def describe(path: Path) -> tuple[object, ...]:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
        return kind, stat.S_IMODE(st.st_mode), st.st_size, st.st_nlink, digest
    if stat.S_ISLNK(st.st_mode):
        return kind, os.readlink(path)
    return kind, stat.S_IMODE(st.st_mode), sorted(os.listdir(path))


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = describe(path)
    return out


def test_random_operations_match_a_reference_directory(
        mount: Mount, src: Path, tmp_path: Path) -> None:
    run_against_reference(mount, src, tmp_path, OPERATIONS, "local")


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_random_operations_on_a_remote_source_match_a_reference_directory(
        tmp_path: Path, data_dir: Path, kind: str, request: pytest.FixtureRequest) -> None:
    request.param = kind  # (source_for reads the server kind there)
    mount = mount_remote(tmp_path, data_dir, source_for(request, tmp_path))
    try:
        run_against_reference(mount, mount.path / "sources" / "r", tmp_path,
                              REMOTE_OPERATIONS, kind)
    finally:
        mount.stop()
    mount.assert_log_clean()


def run_against_reference(mount: Mount, src: Path, tmp_path: Path, operations: int,
                          kind: str) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    mirror = Mirror(src, reference, random.Random(SEED), WITHOUT[kind])
    counts: dict[str, int] = {}  # successful operations by kind
    for n in range(1, operations + 1):
        name, ok = mirror.step()
        counts[name] = counts.get(name, 0) + ok
        if n % int(os.environ.get("FSX_EVERY", "100")) == 0:
            assert tree(src) == tree(reference), f"trees differ after operation {n}: {mirror.last}"
    assert tree(src) == tree(reference)
    mount.remount()
    assert tree(src) == tree(reference), "trees differ after remount"
    assert min(counts.values()) >= operations // 500, f"too few operations succeeded: {counts}"
    print(counts)
