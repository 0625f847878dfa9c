"""The layers of the suite, and the fixtures every layer shares: data directories and
sources made as the CLI makes them, real servers, real mounts through the kernel (in a
subprocess, always unmounted).

Each test lives in the folder of its layer (as S3QL's t1–t6), and is marked with it:
`unit` (one module at a time), `inprocess` (the namespace driven in the test's own
process: `harness.InProcess`, over local folders and `MemoryBackend`), `processes` (the
command line as a user runs it, real servers started by fixtures; no mount), `kernel`
(through a FUSE mount). The first two need neither root nor a server
(`make test-quick`); the last two need root, and are skipped, saying so, without it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from servers import MariaServer, PostgresServer, S3Server, SeaweedServer, SshServer, s3_env

from markfs.config import DataDir
from markfs.namespace.files.sources import add_source
from markfs.namespace.tree import Tree

pytest_plugins = ["shared_fixtures"]  # shared by the in-process tests of two layers
MOUNT_TIMEOUT_S = 20.0
LAYERS = ("unit", "inprocess", "processes", "kernel")
NEEDS_ROOT = {"processes", "kernel"}  # servers run as their own users; mounts allow_other


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test is marked with its layer (its folder's name); one outside a layer's
    folder is an error, so the layers stay whole."""
    outside = sorted({str(item.path) for item in items if item.path.parent.name not in LAYERS})
    if outside:
        raise pytest.UsageError(f"tests outside a layer's folder ({', '.join(LAYERS)}): "
                                + ", ".join(outside))
    for item in items:
        layer = item.path.parent.name
        item.add_marker(getattr(pytest.mark, layer))
        if layer in NEEDS_ROOT and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason=f"the {layer} layer needs root"))


def run_markfs(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; `check` asserts exit status 0."""
    done = subprocess.run([sys.executable, "-m", "markfs", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"markfs {' '.join(args)} failed:\n{done.stderr}"
    return done


def is_mounted(path: Path) -> bool:
    target = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)


def force_unmount(path: Path) -> None:
    if not is_mounted(path):
        return
    if subprocess.run(["fusermount3", "-u", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)


@dataclass
class Mount:
    """One markfs daemon serving `path` from `data_dir`."""

    data_dir: Path
    path: Path
    proc: subprocess.Popen[bytes] | None = None
    root: str = ""

    @property
    def log(self) -> Path:
        return self.data_dir / f"test-mount-{self.path.name}.log"

    def start(self, *extra: str) -> Mount:
        args = [sys.executable, "-m", "markfs", "--data-dir", str(self.data_dir), "mount",
                str(self.path), "--foreground", *extra]
        if self.root:
            args += ["--root", self.root]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not is_mounted(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mount failed:\n{self.log.read_text()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        force_unmount(self.path)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def remount(self, *extra: str) -> None:
        self.stop()
        self.start(*extra)

    def checked(self) -> Iterator[Mount]:
        """Serve a fixture: stop afterwards, then the log must be clean and fsck too."""
        try:
            yield self
        finally:
            self.stop()
        self.assert_log_clean()
        self.assert_fsck_clean()

    def assert_fsck_clean(self) -> None:
        """What `markfs fsck` checks, run in this process (the command has its own tests)."""
        from markfs.admin.fsck import catalog_damage, check_data_dir
        from markfs.config import load_mount_config

        data_dir = DataDir(self.data_dir)
        assert catalog_damage(data_dir) == []
        report = check_data_dir(data_dir, False, load_mount_config(data_dir).cache_max_bytes)
        assert report.clean and not report.repaired, report

    def assert_log_clean(self) -> None:
        text = self.log.read_text() if self.log.exists() else ""
        # A RELEASE the kernel sent just before unmount finds the channel closed when we
        # answer it: pyfuse3 logs that at ERROR level, but nothing is lost.
        lines = [ln for ln in text.splitlines()
                 if "fuse_reply_* failed with No such file or directory" not in ln]
        bad = [ln for ln in lines if "Traceback" in ln or " ERROR " in ln]
        assert not bad, text


Server = TypeVar("Server", SshServer, S3Server, PostgresServer, MariaServer, SeaweedServer)


def served(server: Server) -> Iterator[Server]:
    """A session fixture's body: start the server, hand it out, always stop it."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from served(SshServer.create(tmp_path_factory.mktemp("sshd")))


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    s3_env()
    yield from served(S3Server())


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """SeaweedFS: a real S3 server (moto is an emulator), for what must hold on both."""
    s3_env()
    yield from served(SeaweedServer(tmp_path_factory.mktemp("seaweed")))


DbServer = TypeVar("DbServer", PostgresServer, MariaServer)


def served_in_temp_dir(make: Callable[[Path], DbServer], prefix: str) -> Iterator[DbServer]:
    """Like `served`, for a database whose files live in a fresh directory outside
    pytest's tmp (that is 0700 root, and the servers run as their own users)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield from served(make(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    yield from served_in_temp_dir(PostgresServer, "markfs-test-pg-")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaServer]:
    yield from served_in_temp_dir(MariaServer, "markfs-test-mariadb-")


def in_process(action: Callable[[Tree], object], data_dir: Path) -> None:
    """A set-up step done as `markfs init`/`source add` do it, without a subprocess
    (the commands themselves are tested in test_cli); private files as the CLI makes."""
    old = os.umask(0o077)
    try:
        tree = Tree.open(DataDir(data_dir), create=True)
        try:
            action(tree)
        finally:
            tree.close()
    finally:
        os.umask(old)


def add_source_now(data_dir: Path, name: str, url: str, read_only: bool = False) -> None:
    """`markfs source add` as a set-up step, in process."""
    in_process(lambda tree: add_source(tree, name, url, read_only), data_dir)


ENGINES = ("sqlite", "postgresql")
_catalogs = itertools.count(1)  # each PostgreSQL catalog a new database


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `both_engines` (whole modules: `pytestmark`) runs once with its
    catalog in SQLite and once in PostgreSQL; `MARKFS_TEST_CATALOG=postgresql` puts every
    other test's catalog in PostgreSQL too (a whole-suite run on that engine)."""
    if "catalog_engine" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("catalog_engine", ENGINES, indirect=True)


@pytest.fixture
def catalog_engine(request: pytest.FixtureRequest) -> str:
    """The engine of the test's catalog (`data_dir`)."""
    engine = str(getattr(request, "param", os.environ.get("MARKFS_TEST_CATALOG", "sqlite")))
    if engine == "postgresql" and os.geteuid() != 0:
        pytest.skip("a catalog in PostgreSQL needs root (the server runs as postgres)")
    return engine


def new_catalog_database(server: PostgresServer) -> str:
    """The URL of a new, empty database on `server`, for one catalog."""
    name = f"catalog{next(_catalogs)}"
    admin: Any = server.connect()
    try:
        admin.execute(f"CREATE DATABASE {name}")
    finally:
        admin.close()
    return server.url(name)


@pytest.fixture
def data_dir(tmp_path: Path, catalog_engine: str, request: pytest.FixtureRequest) -> Path:
    """A data directory made as `markfs init` makes it; its catalog on the test's engine."""
    path = tmp_path / "data"
    if catalog_engine == "postgresql":
        path.mkdir(mode=0o700)
        (path / "catalog.url").write_text(
            new_catalog_database(request.getfixturevalue("postgres")) + "\n")
    in_process(lambda tree: None, path)
    return path


@pytest.fixture
def backing(tmp_path: Path, data_dir: Path) -> Path:
    """A local directory registered as the source `loc`."""
    path = tmp_path / "backing"
    path.mkdir()
    add_source_now(data_dir, "loc", f"file://{path}")
    return path


@pytest.fixture
def mount(tmp_path: Path, data_dir: Path, backing: Path) -> Iterator[Mount]:
    """markfs mounted with the local source `loc`; fsck must be clean afterwards."""
    point = tmp_path / "mnt"
    point.mkdir()
    yield from Mount(data_dir, point).start().checked()


def run_as(uid: int, cwd: Path, action: Callable[[], object]) -> int:
    """Run `action` in a child process as `uid` (cwd entered first: pytest's tmp is 0700)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()
            code = 0
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def src(mount: Mount) -> Path:
    """The folder of the local source inside the mount."""
    return mount.path / "sources" / "loc"
