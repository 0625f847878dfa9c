"""`ReadDigest`: a whole-file digest taken from reads answered in any order, or none
where the reads leave a gap (the digests recorded on the way are test_digests's)."""

from __future__ import annotations

import os

import xxhash

from markfs.namespace.remote.digests import ReadDigest


def test_reads_answered_out_of_order_still_give_the_digest() -> None:
    data = os.urandom(1 << 20)
    digest = ReadDigest()
    for offset in (0, 262144, 131072, 524288, 393216, 655360, 786432, 917504):
        digest.feed(offset, data[offset:offset + 131072])
    digest.feed(0, data[:4096])  # a page read again
    assert digest.hexdigest(len(data)) == xxhash.xxh3_128_hexdigest(data)


def test_a_read_that_skips_ahead_gives_no_digest() -> None:
    digest = ReadDigest()
    digest.feed(0, b"a" * 100)
    digest.feed(200, b"c" * 100)
    assert digest.hexdigest(300) is None
