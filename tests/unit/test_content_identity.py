"""A file's content identity, its text forms written and read in one place
(`markfs/identity.py`): what the content cache, the digests and file scans key by."""

from __future__ import annotations

from markfs.identity import (
    ContentIdentity,
    etag_of_scan_text,
    observed_version,
    size_and_mtime,
)

SECOND = 10**9


def test_a_file_without_an_etag_is_known_by_its_size_and_mtime() -> None:
    plain = ContentIdentity(None, 12, 34)
    assert plain.version == plain.digest_key == b"12-34"
    assert plain.scan_text == "12:34" and etag_of_scan_text(plain.scan_text) is None


def test_an_etag_is_the_version_and_a_scan_text_tells_it_from_size_and_mtime() -> None:
    multipart = ContentIdentity(b"9bb58f26192e4ba00f01e2e7b136bbd8-3", 5, 6)
    assert multipart.version == multipart.digest_key == b"9bb58f26192e4ba00f01e2e7b136bbd8-3"
    assert etag_of_scan_text(multipart.scan_text) == multipart.etag
    assert etag_of_scan_text("123-456") == b"123-456"  # a hyphen is an ETag's, not ours


def test_a_young_file_is_a_new_version_at_each_look_with_one_digest_key() -> None:
    """SFTP: a file changed within the settle time may change again in the same second."""
    young = [observed_version(7, 100 * SECOND, now, 2 * SECOND)
             for now in (100 * SECOND + 1, 100 * SECOND + 2)]
    assert young[0] != young[1]
    assert {ContentIdentity(v, 7, 100 * SECOND).digest_key for v in young} == {
        b"7-100000000000"}
    assert size_and_mtime(young[0]) == (b"7", b"100000000000")
    settled = observed_version(7, 100 * SECOND, 103 * SECOND, 2 * SECOND)
    assert settled == b"7-100000000000" == ContentIdentity(None, 7, 100 * SECOND).version
