"""One record per storage scheme (issue 26): every scheme markfs knows is parsed, every
scheme of files is opened, and what a backend says it can do is its scheme's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from markfs.backends.local import LocalBackend
from markfs.backends.memory import MemoryBackend
from markfs.backends.sftp import SftpBackend
from markfs.errors import UserError
from markfs.namespace.files.sources import OPENERS
from markfs.namespace.files.urls import PARSERS, parse_source_url
from markfs.schemes import SCHEMES, UNKNOWN, scheme_of


def test_every_scheme_is_parsed_and_every_scheme_of_files_opened() -> None:
    assert set(PARSERS) == set(SCHEMES)
    assert set(OPENERS) == {name for name, scheme in SCHEMES.items() if not scheme.tables}


def test_a_backend_answers_with_its_schemes_record(tmp_path: Path) -> None:
    assert LocalBackend(tmp_path).scheme is scheme_of("file")
    assert SftpBackend.scheme is scheme_of("sftp")
    assert MemoryBackend().scheme is scheme_of("s3")  # (it stands in for S3)
    opened = OPENERS["s3"](parse_source_url("s3://bucket/p").location, 1.0, 0)
    assert opened.scheme is scheme_of("s3") and not opened.scheme.atomic_rename


def test_what_only_local_storage_does() -> None:
    local = [name for name, scheme in SCHEMES.items() if scheme.local]
    assert local == ["file"]
    assert [n for n, s in SCHEMES.items() if s.atomic_rename] == ["file", "sftp"]


def test_an_unknown_scheme_is_refused_and_has_no_record() -> None:
    with pytest.raises(UserError, match="unknown URL scheme 'webdav'"):
        parse_source_url("webdav://host/dir")
    assert scheme_of("webdav") is UNKNOWN and scheme_of(None) is UNKNOWN


@pytest.mark.parametrize("url, hint", [
    ("s3://AKIA:secret@bucket/p", "boto3's usual chain"),
    ("sftp://me:pw@host/dir", "key_file or ssh-agent"),
    ("postgresql://me:pw@host/db", "~/.pgpass or PGPASSWORD"),
    ("mysql://me:pw@host/db", "MYSQL_PWD or ~/.my.cnf"),
])
def test_a_url_with_credentials_is_told_where_they_go(url: str, hint: str) -> None:
    with pytest.raises(UserError) as refused:
        parse_source_url(url)
    said = str(refused.value)
    assert hint in said and "secret" not in said and ":pw@" not in said
