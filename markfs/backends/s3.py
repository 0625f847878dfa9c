"""The `s3://` backend: a bucket prefix of any S3-compatible endpoint (boto3).

Folders are common prefixes of a delimiter listing, plus zero-byte `key/` markers for
folders made through the mount (and folders given a mode or times). A listing gives size,
LastModified and ETag, one request per page of 1,000 entries; mode, owner and mtime live
in each object's metadata (`s3meta`, as s3fs and rclone keep them), which only a HEAD
gives: listed entries are `partial` (`s3entries`), and `complete` reads the rest — once
per version of an object, as the namespace keeps what it read (a node's ctime is the
object's LastModified: with the ETag it says whether the metadata read is still the
object's). Retries are botocore's own (standard mode).

Files up to PART_SIZE are one PUT; larger ones are multipart uploads driven by the
namespace as a `PieceStore` (it journals the upload id before the first part and
aborts what it does not complete). Part bodies stop being readable once the upload
is cancelled, so a cancel ends an upload within one socket write.
"""

from __future__ import annotations

import datetime
import errno
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from markfs.backends.base import (
    Entry,
    FileAttrs,
    S3Location,
    ServerCopies,
    UploadControl,
)
from markfs.backends.s3entries import DIR_MODE, S3Entries, name_of, typed
from markfs.backends.s3errors import BOTO_ERRORS, as_os_error
from markfs.backends.s3meta import metadata_of
from markfs.backends.s3objects import (
    abort_multipart,
    begin_multipart,
    complete_multipart,
    copy_on_server,
    get_range,
    replace_metadata,
    send_part,
)
from markfs.backends.s3quick import CancellableBody, QuickRequests
from markfs.schemes import SCHEMES

KEY_MAX = 1024  # bytes of UTF-8 in an S3 key
PART_SIZE = 16 * 1024 * 1024  # multipart part size; smaller files are one PUT
QUICK_PUT_MAX = 1024 * 1024  # files up to this go in one PUT signed and sent without the client
PARTS_IN_FLIGHT = 8


def _checked_length(key: str) -> str:
    if len(key.encode()) > KEY_MAX:
        raise OSError(errno.ENAMETOOLONG, f"S3 keys are at most {KEY_MAX} bytes")
    return key


class S3Backend:
    """One bucket prefix, reached through one thread-safe boto3 client."""

    scheme = SCHEMES["s3"]

    def __init__(self, location: S3Location, *, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, max_attempts: int = 4,
                 created_ns: int = 0, uid: int = 0, gid: int = 0) -> None:
        self.loc = location
        config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            s3={"addressing_style": "path"}, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_pool_connections=64)
        self._session = boto3.session.Session()
        self.client: Any = self._session.client(
            "s3", endpoint_url=location.endpoint, region_name=location.region or "us-east-1",
            config=config)
        self.transfer = TransferConfig(multipart_threshold=PART_SIZE,
                                       multipart_chunksize=PART_SIZE, max_concurrency=8)
        self.piece_size, self.pieces_in_flight = PART_SIZE, PARTS_IN_FLIGHT
        self.quick = QuickRequests(self.client, self._session, location.bucket)
        self.entries = S3Entries(uid, gid, created_ns)  # prefixes have no time of their own

    # -- keys ----------------------------------------------------------------

    def key(self, path: bytes) -> str:
        try:
            key = self.loc.prefix + path.decode()
        except UnicodeDecodeError:
            raise OSError(errno.EINVAL, "S3 keys must be UTF-8") from None
        return _checked_length(key)

    def check_path(self, path: bytes) -> None:
        self.key(path)

    def _dir_key(self, path: bytes) -> str:
        return _checked_length(self.key(path) + "/") if path else self.loc.prefix

    def _head(self, key: str) -> dict[str, Any] | None:
        """The HEAD of one key; None if there is no such object."""
        try:
            return dict(self.client.head_object(Bucket=self.loc.bucket, Key=key))
        except BOTO_ERRORS as exc:
            if as_os_error(exc, "").errno == errno.ENOENT:
                return None
            raise as_os_error(exc, f"stat {key!r}") from None

    # -- reading -------------------------------------------------------------

    def list_pages(self, path: bytes) -> Iterator[list[Entry]]:
        prefix = self._dir_key(path)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.loc.bucket, Prefix=prefix, Delimiter="/")
        try:
            for page in pages:
                yield self.entries.of_page(page, prefix)
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"list {prefix!r}") from None

    def stat(self, path: bytes) -> Entry:
        name = path.rsplit(b"/", 1)[-1]
        if not path:
            return self.entries.folder(b"")
        head = self._head(self.key(path))
        if head is not None:
            return self.entries.from_head(name, head, stat.S_IFREG)
        first = self._first_below(path)
        if first is None:
            raise OSError(errno.ENOENT, f"no such object: {path!r}")
        if first == self._dir_key(path):  # (a marker sorts first of all below it)
            return self._marker_entry(path, self.entries.folder(name))
        return self.entries.folder(name)

    def complete(self, path: bytes, entry: Entry) -> Entry:
        """The metadata of a listed file (HEAD), or of a listed folder's marker if it
        has one."""
        if stat.S_ISDIR(entry.mode):
            return self._marker_entry(path, replace(entry, meta_kept=0, partial=False),
                                      self._head_quick)
        head = self._head_quick(self.key(path))
        if head is None:
            raise OSError(errno.ENOENT, f"no such object: {path!r}")
        return self.entries.from_head(entry.name, head, stat.S_IFREG)

    def _marker_entry(self, path: bytes, plain: Entry,
                      head_of: Callable[[str], dict[str, Any] | None] | None = None) -> Entry:
        head = (head_of or self._head)(self._dir_key(path))
        return plain if head is None else self.entries.from_head(plain.name, head, stat.S_IFDIR)

    def _head_quick(self, key: str) -> dict[str, Any] | None:
        """`_head` the quick way (`s3quick`: 0.5 ms of CPU against the client's 1.4 ms a
        request here), for the many HEADs that complete a listing; through the client
        where the quick way had no answer."""
        answered, head = self.quick.head(key)
        return head if answered else self._head(key)

    def _put_quick(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """A small object's PUT the quick way (1.5 ms of CPU less than the client's: on a
        2-core machine the uploads of many small files otherwise hold the GIL away from
        the FUSE loop); False: the client is to try."""
        return self.quick.put(key, body, metadata)

    def _first_below(self, path: bytes) -> str | None:
        try:
            page = self.client.list_objects_v2(Bucket=self.loc.bucket, Prefix=self._dir_key(path),
                                               MaxKeys=1)
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"list {path!r}") from None
        contents = page.get("Contents") or [{}]
        return str(contents[0].get("Key", "")) if page.get("KeyCount", 0) else None

    def _has_children(self, path: bytes) -> bool:
        return self._first_below(path) is not None

    def read_range(self, path: bytes, offset: int, size: int, etag: bytes | None) -> bytes:
        """Bytes [offset, offset+size) of the object as it is at `etag` (ESTALE if changed)."""
        return b"".join(self.read_stream(path, offset, size, etag))

    def read_stream(self, path: bytes, offset: int, size: int,
                    etag: bytes | None) -> Iterator[bytes]:
        """One ranged GET, yielded as it arrives."""
        return get_range(self.client, self.loc.bucket, self.key(path), offset, size, etag,
                         f"read {path!r}")

    # -- writing -------------------------------------------------------------

    def upload(self, path: bytes, local_file: str, control: UploadControl | None = None,
               attrs: FileAttrs | None = None) -> Entry:
        """Store a local file of at most `piece_size` bytes as the object at `path`, with
        `attrs` as its metadata (one PUT; larger files go in pieces)."""
        control = control or UploadControl()
        with open(local_file, "rb") as f:  # in memory: a later change cannot make
            body = f.read(self.piece_size + 1)  # the body disagree with its length
        if len(body) > self.piece_size:
            raise OSError(errno.EFBIG, f"upload {path!r}: larger files go in pieces")
        key, metadata = self.key(path), metadata_of(attrs or FileAttrs())
        control.check()
        if len(body) <= QUICK_PUT_MAX and self._put_quick(key, body, metadata):
            head = self._head_quick(key)
            if head is not None:
                return self.entries.from_head(path.rsplit(b"/", 1)[-1], head, stat.S_IFREG)
            return self.stat(path)
        try:
            self.client.put_object(Bucket=self.loc.bucket, Key=key,
                                   Body=CancellableBody(body, control), Metadata=metadata)
        except BOTO_ERRORS as exc:
            control.check()  # (a cancelled body surfaces as a connection error)
            raise as_os_error(exc, f"upload {path!r}") from None
        return self.stat(path)

    # -- uploads in pieces: multipart uploads ---------------------------------

    def begin_pieces(self, path: bytes) -> str:
        return begin_multipart(self.client, self.loc.bucket, self.key(path), f"upload {path!r}")

    def send_piece(self, path: bytes, token: str, number: int, data: bytes,
                   control: UploadControl) -> str:
        return send_part(self.client, self.loc.bucket, self.key(path), token, number, data,
                         control, f"upload {path!r}")

    def finish_pieces(self, path: bytes, token: str, receipts: list[str]) -> Entry:
        complete_multipart(self.client, self.loc.bucket, self.key(path), token, receipts,
                           f"upload {path!r}")
        return self.stat(path)

    def abort_pieces(self, path: bytes, token: str) -> None:
        abort_multipart(self.client, self.loc.bucket, self.key(path), token,
                        f"abort upload of {path!r}")

    def mkdir(self, path: bytes, mode: int, attrs: FileAttrs | None = None) -> None:
        """A marker `path/`, unless a file `path` or anything below `path/` is there:
        a quick HEAD, a LIST and a quick PUT (the client's pipeline for none but the
        LIST: a folder made cost 4 of its requests, 10-17 ms)."""
        marker = self._dir_key(path)  # a marker too long is ENAMETOOLONG whatever exists
        if self._head_quick(self.key(path)) is not None or self._has_children(path):
            raise OSError(errno.EEXIST, f"{path!r} exists")
        metadata = metadata_of(attrs or FileAttrs())
        if not self._put_quick(marker, b"", metadata):
            self._put_empty(marker, attrs)

    def mkdir_with(self, path: bytes, attrs: FileAttrs) -> Entry:
        """A folder whose marker keeps `attrs`; its entry is the one a HEAD of the marker
        would give (its metadata is what was just PUT; its ctime, now) — not asked."""
        as_folder = typed(attrs, stat.S_IFDIR)
        self.mkdir(path, attrs.mode or DIR_MODE, as_folder)
        made = {"LastModified": datetime.datetime.now(datetime.timezone.utc),
                "Metadata": metadata_of(as_folder)}
        return self.entries.from_head(path.rsplit(b"/", 1)[-1], made, stat.S_IFDIR)

    def _put_empty(self, key: str, attrs: FileAttrs | None = None) -> None:
        try:
            self.client.put_object(Bucket=self.loc.bucket, Key=key, Body=b"",
                                   Metadata=metadata_of(attrs or FileAttrs()))
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"create {key!r}") from None

    def _object_exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.loc.bucket, Key=key)
            return True
        except BOTO_ERRORS as exc:
            if as_os_error(exc, "").errno == errno.ENOENT:
                return False
            raise as_os_error(exc, f"stat {key!r}") from None

    def rmdir(self, path: bytes) -> None:
        prefix = self._dir_key(path)
        try:
            page = self.client.list_objects_v2(Bucket=self.loc.bucket, Prefix=prefix, MaxKeys=2)
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"list {path!r}") from None
        keys = [o["Key"] for o in page.get("Contents", [])]
        if any(k != prefix for k in keys):
            raise OSError(errno.ENOTEMPTY, f"{path!r} is not empty")
        self._delete_key(prefix)

    def _delete_key(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.loc.bucket, Key=key)
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"delete {key!r}") from None

    def unlink(self, path: bytes) -> None:
        self._delete_key(self.key(path))

    def copy(self, old: bytes, new: bytes) -> None:
        try:
            self.client.copy({"Bucket": self.loc.bucket, "Key": self.key(old)},
                             self.loc.bucket, self.key(new), Config=self.transfer)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise as_os_error(exc, f"copy {old!r}") from None

    def copy_file(self, source: ServerCopies, old: bytes, new: bytes) -> Entry:
        """A copy made on the server (`s3objects.copy_on_server`), also from another
        bucket of this endpoint."""
        if not isinstance(source, S3Backend) or (source.loc.endpoint, source.loc.region) != (
                self.loc.endpoint, self.loc.region):
            raise OSError(errno.EXDEV, "not on this S3 endpoint")
        if self._object_exists(self.key(new)):
            raise OSError(errno.EEXIST, f"{new!r} exists")
        origin = {"Bucket": source.loc.bucket, "Key": source.key(old)}
        try:
            copy_on_server(self.client, origin, self.loc.bucket, self.key(new),
                           source.stat(old).size)
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"copy {old!r}") from None
        return self.stat(new)

    def rename(self, old: bytes, new: bytes, flags: int) -> None:
        """Copy then delete: every key of a folder, or the one object of a file."""
        if flags:
            raise OSError(errno.EINVAL, "S3 cannot rename atomically with flags")
        if self._object_exists(self.key(old)):
            self.copy(old, new)
            self.unlink(old)
            return
        keys = self.list_tree(old)
        if not keys:
            raise OSError(errno.ENOENT, f"no such object: {old!r}")
        cut = len(old)
        for key in keys:  # copy all before deleting any: a crash leaves a whole copy
            self.copy(key, new + key[cut:])
        for key in keys:
            self._delete_key(self.key(key))

    def symlink(self, target: bytes, path: bytes) -> None:
        raise OSError(errno.EPERM, "S3 has no symbolic links")

    def link(self, existing: bytes, new: bytes) -> None:
        raise OSError(errno.EPERM, "S3 has no hard links")

    def chmod(self, path: bytes, mode: int) -> None:
        self.set_attrs(path, FileAttrs(mode=mode))

    def chown(self, path: bytes, uid: int, gid: int) -> None:
        self.set_attrs(path, FileAttrs(uid=None if uid < 0 else uid,
                                       gid=None if gid < 0 else gid))

    def utime(self, path: bytes, atime_ns: int | None, mtime_ns: int | None) -> None:
        """The mtime only: S3 keeps no access time."""
        if mtime_ns is not None:
            self.set_attrs(path, FileAttrs(mtime_ns=mtime_ns))

    def set_attrs(self, path: bytes, attrs: FileAttrs) -> Entry:
        """A file's metadata replaced by a copy onto itself (the bytes stay on the server;
        only if it is still the version looked at); a folder's marker likewise, or made
        (keeping them) where the folder has none. Metadata `attrs` does not name stays."""
        head = self._head(self.key(path)) if path else None
        if head is not None:
            replace_metadata(self.client, self.loc.bucket, self.key(path), head,
                             typed(attrs, stat.S_IFREG))
            return self.stat(path)
        attrs = typed(attrs, stat.S_IFDIR)
        marker = self._dir_key(path)
        head = self._head(marker)
        if head is not None:
            try:
                replace_metadata(self.client, self.loc.bucket, marker, head, attrs)
            except OSError as exc:  # SeaweedFS: a marker is a folder of its filer, not an
                if exc.errno != errno.ENOENT:  # object a copy can replace; its folders
                    raise                      # keep no metadata (the catalog does)
        elif self._has_children(path) or not path:
            self._put_empty(marker, attrs)
        else:
            raise OSError(errno.ENOENT, f"no such object: {path!r}")
        return self._marker_entry(path, self.entries.folder(path.rsplit(b"/", 1)[-1]))

    def truncate(self, path: bytes, size: int) -> None:
        raise OSError(errno.ENOTSUP, "S3 objects are truncated through an open file")

    def list_tree(self, path: bytes) -> list[bytes]:
        """Every key below a folder (its marker included), relative to the source root."""
        prefix = self._dir_key(path)
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.loc.bucket, Prefix=prefix):
                out += [name_of(o["Key"][len(self.loc.prefix):]) for o in page.get("Contents", [])]
        except BOTO_ERRORS as exc:
            raise as_os_error(exc, f"list {path!r}") from None
        return out

    def connect_ahead(self) -> None:
        """HTTP connections are made by the first request, in a moment."""

    def check(self) -> str:
        try:
            self.client.head_bucket(Bucket=self.loc.bucket)
            page = self.client.list_objects_v2(Bucket=self.loc.bucket, Prefix=self.loc.prefix,
                                               Delimiter="/", MaxKeys=1000)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise as_os_error(exc, f"bucket {self.loc.bucket!r}") from None
        count = len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        more = "+" if page.get("IsTruncated") else ""
        return f"s3://{self.loc.bucket}/{self.loc.prefix}: {count}{more} entries at the top level"
