"""The command-line contract: commands, one-line errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_markfs


def assert_user_error(done: object, fragment: str) -> None:
    assert done.returncode == 1, done.stderr  # type: ignore[attr-defined]
    err = done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err
    assert err.startswith("markfs: ") and err.count("\n") == 1, err
    assert fragment in err, err


def test_init_is_idempotent(tmp_path: Path) -> None:
    run_markfs(tmp_path / "d", "init")
    run_markfs(tmp_path / "d", "init")
    assert (tmp_path / "d" / "catalog.db").exists()


def test_commands_need_an_initialised_data_dir(tmp_path: Path) -> None:
    assert_user_error(run_markfs(tmp_path / "none", "source", "list", check=False), "markfs init")


def test_source_add_list_show_remove(data_dir: Path, tmp_path: Path) -> None:
    run_markfs(data_dir, "source", "add", "docs", f"file://{tmp_path}", "--read-only")
    assert run_markfs(data_dir, "source", "list").stdout == f"docs\tfile://{tmp_path}\tro\n"
    shown = json.loads(run_markfs(data_dir, "source", "show", "docs").stdout)
    assert shown["read_only"] is True and shown["mount_path"] == "/sources/docs"
    run_markfs(data_dir, "source", "remove", "docs")
    assert run_markfs(data_dir, "source", "list").stdout == ""


def test_source_test_reports_a_usable_directory(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    run_markfs(data_dir, "source", "add", "t", f"file://{tmp_path}")
    assert run_markfs(data_dir, "source", "test", "t").stdout.startswith("ok: ")


def test_source_test_fails_when_the_directory_is_gone(data_dir: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    run_markfs(data_dir, "source", "add", "t", f"file://{gone}")
    gone.rmdir()
    assert_user_error(run_markfs(data_dir, "source", "test", "t", check=False), "not usable")


@pytest.mark.parametrize("url, fragment", [
    ("not-a-url", "not a source URL"),
    ("ftp://host/x", "unknown URL scheme"),
    ("file://relative/path", "absolute path"),
    ("file:///no/such/dir/anywhere", "not a directory"),
    ("file:///tmp/../etc", "'..'"),
    ("mysql://u:secret@127.0.0.1:3306/db", "passwords do not belong"),
    ("mysql://127.0.0.1:3306/db", "need a user and a host"),
    ("postgresql://u:secret@127.0.0.1:5432/db", "passwords do not belong"),
    ("postgresql://u@127.0.0.1:5432", "need a host and a database"),
    ("s3://Bad_Bucket/x", "invalid S3 bucket name"),
    ("s3://bucket/a//b", "invalid S3 prefix"),
    ("s3://bucket/p?colour=blue", "unknown parameter 'colour'"),
    ("s3://bucket/p?endpoint=ftp://127.0.0.1", "http:// or https://"),
    ("sftp://host/path", "need a user and a host"),
    ("sftp://user:secret@host/path", "credentials do not belong"),
    ("sftp://user@host/path?key_file=/no/such/key", "key_file not found"),
    ("sftp://user@host:99999/path", "invalid port"),
    ("s3://bucket/p?endpoint=http://KEY:secret@127.0.0.1:9000", "credentials do not belong"),
    ("s3://bucket/p?endpoint=http://secret@127.0.0.1:9000", "credentials do not belong"),
    ("s3://KEY:secret@bucket/p", "credentials do not belong"),
    ("s3://bucket/p?token=secret", "unknown parameter 'token'"),
    ("s3://bucket/p?endpoint=http://127.0.0.1:70000", "invalid port in endpoint"),
    ("s3://bucket/p?endpoint=http://127.0.0.1:0", "invalid port in endpoint"),
])
def test_source_add_rejects_bad_urls(data_dir: Path, url: str, fragment: str) -> None:
    done = run_markfs(data_dir, "source", "add", "x", url, check=False)
    assert_user_error(done, fragment)
    assert "secret" not in done.stderr


@pytest.mark.parametrize("name", ["", "-dash", "a/b", "..", "x" * 64, "sp ace", "ümlaut"])
def test_source_add_rejects_invalid_names(data_dir: Path, tmp_path: Path, name: str) -> None:
    done = run_markfs(data_dir, "source", "add", "--", name, f"file://{tmp_path}", check=False)
    assert_user_error(done, "invalid source name")


def test_source_add_refuses_a_duplicate_name(data_dir: Path, tmp_path: Path) -> None:
    run_markfs(data_dir, "source", "add", "x", f"file://{tmp_path}")
    done = run_markfs(data_dir, "source", "add", "x", f"file://{tmp_path}", check=False)
    assert_user_error(done, "exists already")


@pytest.mark.parametrize("verb", ["show", "test", "remove"])
def test_unknown_source_is_a_user_error(data_dir: Path, verb: str) -> None:
    assert_user_error(run_markfs(data_dir, "source", verb, "nope", check=False), "unknown source")


def test_usage_errors_exit_2(data_dir: Path) -> None:
    assert run_markfs(data_dir, "source", "add", check=False).returncode == 2
    assert run_markfs(data_dir, "no-such-command", check=False).returncode == 2


def test_every_command_has_help(data_dir: Path) -> None:
    for cmd in (["init"], ["source", "add"], ["source", "list"], ["mount"], ["umount"],
                ["status"], ["fsck"], ["demo"]):
        done = run_markfs(data_dir, *cmd, "--help")
        assert "Usage:" in done.stdout


def test_mount_on_a_missing_directory_is_a_user_error(data_dir: Path, tmp_path: Path) -> None:
    done = run_markfs(data_dir, "mount", str(tmp_path / "missing"), check=False)
    assert_user_error(done, "not a directory")


def test_mount_with_an_unknown_root_is_a_user_error(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    done = run_markfs(data_dir, "mount", str(tmp_path / "m"), "--root", "views/nope",
                      check=False)
    assert_user_error(done, "no such path")


def test_umount_of_a_path_that_is_not_mounted_is_a_user_error(
        data_dir: Path, tmp_path: Path) -> None:
    assert_user_error(run_markfs(data_dir, "umount", str(tmp_path), check=False), "not mounted")


def test_status_lists_sources_and_catalog(data_dir: Path, backing: Path) -> None:
    out = run_markfs(data_dir, "status").stdout
    assert "sources: 1" in out and "loc" in out and "pending uploads: 0 " in out


def test_fsck_of_a_fresh_catalog_is_clean(data_dir: Path) -> None:
    assert run_markfs(data_dir, "fsck").stdout.strip() == "clean"


def test_bad_config_file_is_a_user_error(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "markfs.toml").write_text("[mount]\nentry_ttl = 'soon'\n")
    (tmp_path / "m").mkdir()
    done = run_markfs(data_dir, "mount", str(tmp_path / "m"), check=False)
    assert_user_error(done, "mount.entry_ttl must be a float")


def test_credentials_stored_by_an_older_version_are_never_shown(data_dir: Path) -> None:
    import apsw

    conn = apsw.Connection(str(data_dir / "catalog.db"))
    conn.execute("INSERT INTO sources (name, url, scheme, read_only, created_ns) VALUES "
                 "('old', 's3://b/p?endpoint=http://KEY:SECRET@127.0.0.1:9000', 's3', 0, 0)")
    conn.close()
    for args in (["source", "list"], ["source", "show", "old"], ["status"]):
        out = run_markfs(data_dir, *args).stdout
        assert "127.0.0.1:9000" in out and "SECRET" not in out and "KEY" not in out, out


def test_the_demo_installs_what_it_needs_and_the_tests_the_rest(tmp_path: Path) -> None:
    """On a machine with nothing (SETUP_ROOT: an empty folder), `make demo`'s set-up
    would install FUSE and the OpenSSH client only; `make test`'s the servers too
    (before: the demo's first run spent most of its time on MariaDB, Samba, ganesha)."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]

    def would_install(*args: str) -> set[str]:
        done = subprocess.run(["bash", str(repo / "tools" / "setup-system.sh"), *args],
                              env={**os.environ, "SETUP_ROOT": str(tmp_path),
                                   "SETUP_DRY_RUN": "1"},
                              capture_output=True, text=True, check=True)
        return set(done.stdout.split())

    demo, test = would_install(), would_install("test")
    assert {"fuse3", "libfuse3-dev", "openssh-client"} <= demo
    assert not demo & {"mariadb-server", "samba", "nfs-ganesha", "postgresql",
                       "openssh-server", "smbclient", "libnfs-utils"}
    assert demo < test and {"mariadb-server", "samba", "nfs-ganesha", "postgresql"} <= test
    makefile = (repo / "Makefile").read_text()
    assert "\ndemo: setup\n" in makefile and "\ntest: setup-test lint\n" in makefile
