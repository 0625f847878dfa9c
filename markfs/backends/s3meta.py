"""Mode, owner and mtime in S3 object metadata, as the established tools keep them.

s3fs writes `x-amz-meta-mode` (st_mode in decimal, type bits included), `-uid`, `-gid`
and `-mtime`; rclone writes `X-Amz-Meta-Mtime` (S3 metadata names are case-blind, so
it is the same key) and, with `--metadata`, a mode in octal. markfs writes what s3fs
writes, with the mtime as seconds and nine decimals ("981173106.789000000"): s3fs
reads the digits after the point as nanoseconds and rclone as a fraction, which agree
only with all nine written. It reads both tools' forms. What a key lacks is left to
the mount's defaults (`--uid/--gid/--umask`, LastModified).

A mode read here never carries set-user-ID or set-group-ID bits: whoever can write to
the bucket decides the modes shown, and must not hand out privileges on this host.
"""

from __future__ import annotations

import stat

from markfs.backends.base import KEPT_GID, KEPT_MODE, KEPT_UID, FileAttrs

MAX_ID = 2**32 - 2  # (2**32 - 1 is the kernel's "none")
MODE_KEY, UID_KEY, GID_KEY, MTIME_KEY = "mode", "uid", "gid", "mtime"
PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
FILE_TYPES = frozenset({0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO,
                        stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK})  # 0: bits alone


def metadata_of(attrs: FileAttrs) -> dict[str, str]:
    """The x-amz-meta-* values (keys without the prefix) that keep `attrs`."""
    out: dict[str, str] = {}
    if attrs.mode is not None:
        out[MODE_KEY] = str(attrs.mode)
    if attrs.uid is not None:
        out[UID_KEY] = str(attrs.uid)
    if attrs.gid is not None:
        out[GID_KEY] = str(attrs.gid)
    if attrs.mtime_ns is not None:
        seconds, nanos = divmod(attrs.mtime_ns, 1_000_000_000)
        out[MTIME_KEY] = f"{seconds}.{nanos:09d}"
    return out


def attrs_from(metadata: dict[str, str], kind: int) -> tuple[FileAttrs, int]:
    """What an object's metadata says (`kind`: S_IFREG or S_IFDIR, the object's own
    type) and which of mode/uid/gid it gave (KEPT_* bits). Values that do not parse
    are as good as absent."""
    lowered = {k.lower(): v.strip() for k, v in metadata.items()}
    mode = _mode(lowered.get(MODE_KEY), kind)
    uid, gid = _id(lowered.get(UID_KEY)), _id(lowered.get(GID_KEY))
    kept = ((KEPT_MODE if mode is not None else 0) | (KEPT_UID if uid is not None else 0)
            | (KEPT_GID if gid is not None else 0))
    return FileAttrs(mode, uid, gid, _mtime_ns(lowered.get(MTIME_KEY))), kept


def _mode(text: str | None, kind: int) -> int | None:
    """s3fs's decimal st_mode, else rclone's octal one ("100644" is of no file type read
    as decimal); a type other than the object's (an s3fs symlink is an object) keeps
    only the permission bits."""
    if not text:
        return None
    for base in (10, 8):
        try:
            value = int(text, base)
        except ValueError:
            continue
        if 0 <= value <= 0o177777 and stat.S_IFMT(value) in FILE_TYPES:
            return kind | (stat.S_IMODE(value) & ~PRIVILEGE_BITS)
    return None


def _id(text: str | None) -> int | None:
    if not text or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _mtime_ns(text: str | None) -> int | None:
    """Decimal seconds with an optional fraction, read exactly (no float)."""
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    if not whole.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        return None
    seconds = int(whole)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    if not -(2**62) < seconds < 2**33:
        return None
    return seconds * 1_000_000_000 + (-nanos if whole.startswith("-") else nanos)
