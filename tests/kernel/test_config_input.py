"""Bad configuration and bad input (issue 24, part 6): every bad markfs.toml, id, URL
or rule is one line on stderr and exit 1 — at mount and at every command that reads
the file — never a traceback, never accepted to fail later; `init` makes private only
the folders it creates."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import force_unmount, is_mounted, run_markfs


def unmount_if_mounted(data_dir: Path, point: Path) -> None:
    """A mount that should have been refused and was not: taken down (its daemon goes
    with it) before the test says so."""
    if is_mounted(point):
        run_markfs(data_dir, "umount", str(point), check=False)
        force_unmount(point)


BAD_SETTINGS = [
    ("[mount]\nentry_ttl = -1\n", "mount.entry_ttl must be between 0 and 86400"),
    ("[mount]\nattr_ttl = nan\n", "mount.attr_ttl must be between"),
    ("[mount]\ndir_ttl = inf\n", "mount.dir_ttl must be between"),
    ("[mount]\nio_timeout = -1\n", "mount.io_timeout must be between 0.1 and"),
    ("[mount]\nio_timeout = 0\n", "mount.io_timeout must be between 0.1 and"),
    ("[mount]\nlist_timeout = 0.0\n", "mount.list_timeout must be between"),
    ("[mount]\nio_threads = 0\n", "mount.io_threads must be between 1 and 1024"),
    ("[mount]\nio_threads = 100000\n", "mount.io_threads must be between 1 and 1024"),
    ("[mount]\nmax_tasks = 0\n", "mount.max_tasks must be between"),
    ("[mount]\ncache_max_bytes = -1\n", "mount.cache_max_bytes must be between 0"),
    ("[mount]\nlog_keep = -1\n", "mount.log_keep must be between 1 and 1000"),
    ("[mount]\nlog_max_bytes = 0\n", "mount.log_max_bytes must be between"),
    ("[mount]\ndrain_timeout = -5\n", "mount.drain_timeout must be between"),
    ("[mount]\nread_ahead_kb = -4\n", "mount.read_ahead_kb must be between"),
    ("[backup]\nkeep = 0\n", "backup.keep must be between 1 and"),
    ("[mounts]\nentry_ttl = 1\n", "unknown section [mounts]"),
    ("mount = 5\n", "mount must be a section"),
    ("[mount]\nentry_tll = 1\n", "unknown setting mount.entry_tll"),
    ("[mount]\nwatch_local = 1\n", "mount.watch_local must be a bool"),
    ("[scan]\nrefresh = 'yes'\n", "scan.refresh must be a bool"),
]


@pytest.mark.parametrize("text, said", BAD_SETTINGS)
def test_a_bad_setting_is_refused_in_one_line_by_every_command_that_reads_it(
        data_dir: Path, tmp_path: Path, text: str, said: str) -> None:
    (data_dir / "markfs.toml").write_text(text)
    point = tmp_path / "m"
    point.mkdir()
    try:
        for args in (("mount", str(point)), ("fsck",)):
            done = run_markfs(data_dir, *args, check=False)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert done.stderr.count("\n") == 1 and said in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
        assert not os.path.ismount(point)
    finally:
        unmount_if_mounted(data_dir, point)


def test_good_settings_at_their_bounds_are_taken(data_dir: Path) -> None:
    (data_dir / "markfs.toml").write_text(
        "[mount]\nentry_ttl = 0\nattr_ttl = 0.0\ndir_ttl = 0\nio_timeout = 0.1\n"
        "io_threads = 1\ncache_max_bytes = 0\nlog_keep = 1\n[backup]\nkeep = 1\n")
    assert run_markfs(data_dir, "fsck").stdout.strip() == "clean"


@pytest.mark.parametrize("option", [["--uid", "99999999999"], ["--gid", "4294967295"],
                                    ["--uid", "-3"]])
def test_an_id_out_of_range_is_refused(data_dir: Path, tmp_path: Path,
                                       option: list[str]) -> None:
    (tmp_path / "m").mkdir()
    try:
        done = run_markfs(data_dir, "mount", str(tmp_path / "m"), *option, check=False)
    finally:
        unmount_if_mounted(data_dir, tmp_path / "m")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "between 0 and 4294967294" in done.stderr or "no such" in done.stderr


@pytest.mark.parametrize("url, said", [
    ("s3://bucket/x?endpoint=http://[::1", "endpoint"),
    ("file:///tmp?x=1", "take no parameters"),
    ("sqlite:///tmp/x.db?mode=ro", "take no parameters"),
])
def test_urls_that_tripped_the_parser_are_one_line(data_dir: Path, url: str,
                                                   said: str) -> None:
    done = run_markfs(data_dir, "source", "add", "x", url, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("rule", ["loc:[unclosed", "loc:a/[", "loc:x[]"])
def test_a_view_rule_with_a_broken_bracket_is_refused(
        data_dir: Path, backing: Path, rule: str) -> None:
    done = run_markfs(data_dir, "view", "add", "v", rule, check=False)
    assert done.returncode == 1 and "bracket" in done.stderr, done.stderr
    assert "v" not in run_markfs(data_dir, "view", "list").stdout.split()


def test_a_data_dir_the_caller_cannot_read_is_one_line(tmp_path: Path) -> None:
    """As another user: root's 0700 data dir."""
    import subprocess
    import sys

    from conftest import in_process
    data_dir = tmp_path / "data"
    in_process(lambda tree: None, data_dir)
    os.chmod(tmp_path, 0o755)
    done = subprocess.run(
        ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", sys.executable, "-m",
         "markfs", "--data-dir", str(data_dir), "source", "list"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/"},
        cwd="/")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "permission denied" in done.stderr and "Traceback" not in done.stderr


def test_init_leaves_an_existing_folders_mode_and_refuses_a_foreign_one(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    run_markfs(shared, "init")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    fresh = tmp_path / "new" / "data"
    run_markfs(fresh, "init")
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    done = run_markfs(foreign, "init", check=False)
    assert done.returncode == 1 and "not a markfs data directory" in done.stderr
    assert sorted(os.listdir(foreign)) == ["thesis.tex"]
    run_markfs(shared, "init")  # a data dir already: fine, again


def test_an_errno_is_said_once() -> None:
    from markfs.errors import FsError

    assert str(FsError.from_os(OSError(5, "connect failed"))) == "[Errno 5] connect failed"
