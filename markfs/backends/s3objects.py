"""Requests on one S3 object by its key — a ranged GET streamed, the steps of a
multipart upload, a copy made on the server, metadata replaced by a copy onto itself —
with what each failure means to a file operation. `S3Backend` turns paths into keys and
entries; `what` names the operation in errors ("read 'a/b'")."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from markfs.backends.base import FileAttrs, UploadControl
from markfs.backends.s3errors import BOTO_ERRORS, as_os_error, error_code
from markfs.backends.s3meta import metadata_of
from markfs.backends.s3quick import CancellableBody

COPY_OBJECT_MAX = 5 * 1024**3  # the largest object one CopyObject may copy
COPY_PART = 256 * 1024 * 1024  # parts of a larger server-side copy
# headers a metadata REPLACE would drop unless given again
KEPT_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
                "ContentType", "Expires")


def get_range(client: Any, bucket: str, key: str, offset: int, size: int,
              etag: bytes | None, what: str) -> Iterator[bytes]:
    """One ranged GET, yielded as it arrives; ESTALE if the object is no longer `etag`."""
    if size <= 0:
        return
    args: dict[str, Any] = {"Bucket": bucket, "Key": key,
                            "Range": f"bytes={offset}-{offset + size - 1}"}
    if etag:
        args["IfMatch"] = '"' + etag.decode() + '"'
    try:
        body = client.get_object(**args)["Body"]
    except BOTO_ERRORS as exc:
        code = error_code(exc)
        if code in ("PreconditionFailed", "412"):
            raise OSError(errno.ESTALE, f"{what}: changed on the server") from None
        if code in ("InvalidRange", "416"):
            return
        raise as_os_error(exc, what) from None
    try:
        while piece := body.read(1 << 20):
            yield bytes(piece)
    except (OSError, botocore.exceptions.BotoCoreError) as exc:
        raise OSError(errno.EIO, f"{what}: connection lost") from exc
    finally:
        body.close()


def begin_multipart(client: Any, bucket: str, key: str, what: str) -> str:
    try:
        return str(client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    except BOTO_ERRORS as exc:
        raise as_os_error(exc, what) from None


def send_part(client: Any, bucket: str, key: str, token: str, number: int, data: bytes,
              control: UploadControl, what: str) -> str:
    """One part (a cancel stops its body within one socket write); its receipt."""
    control.check()
    try:
        done = client.upload_part(Bucket=bucket, Key=key, UploadId=token, PartNumber=number,
                                  Body=CancellableBody(data, control))
    except BOTO_ERRORS as exc:
        control.check()
        raise as_os_error(exc, f"{what} part {number}") from None
    return str(done["ETag"])


def complete_multipart(client: Any, bucket: str, key: str, token: str, receipts: list[str],
                       what: str) -> None:
    parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(receipts, 1)]
    try:
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=token,
                                         MultipartUpload={"Parts": parts})
    except BOTO_ERRORS as exc:
        raise as_os_error(exc, what) from None


def abort_multipart(client: Any, bucket: str, key: str, token: str, what: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=token)
    except BOTO_ERRORS as exc:
        if error_code(exc) not in ("NoSuchUpload", "404"):  # completed or aborted already
            raise as_os_error(exc, what) from None


def copy_on_server(client: Any, origin: dict[str, str], bucket: str, key: str, size: int,
                   **args: Any) -> None:
    """One CopyObject up to S3's 5 GiB limit for it (one request: on SeaweedFS 1.5 s for
    512 MiB where 32 part copies took 1.9 s); above, parts of 256 MiB copied on the
    server (UploadPartCopy). `args`: CopyObject's own (the multipart copy takes all but
    CopySourceIfMatch)."""
    if size <= COPY_OBJECT_MAX:
        client.copy_object(CopySource=origin, Bucket=bucket, Key=key, **args)
        return
    extra = {k: v for k, v in args.items() if k != "CopySourceIfMatch"}
    client.copy(origin, bucket, key, ExtraArgs=extra or None,
                Config=TransferConfig(multipart_threshold=COPY_PART,
                                      multipart_chunksize=COPY_PART))


def replace_metadata(client: Any, bucket: str, key: str, head: dict[str, Any],
                     attrs: FileAttrs) -> None:
    """The object's metadata with `attrs` over it, by a copy onto itself — only if it is
    still the version `head` looked at (ESTALE otherwise); other headers kept."""
    metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    metadata.update(metadata_of(attrs))
    args: dict[str, Any] = {h: head[h] for h in KEPT_HEADERS if head.get(h)}
    args.update(Metadata=metadata, MetadataDirective="REPLACE")
    try:
        copy_on_server(client, {"Bucket": bucket, "Key": key}, bucket, key,
                       head["ContentLength"], CopySourceIfMatch=head["ETag"], **args)
    except BOTO_ERRORS as exc:
        if error_code(exc) in ("PreconditionFailed", "412"):
            raise OSError(errno.ESTALE, f"{key!r} changed on the server") from None
        raise as_os_error(exc, f"set attributes of {key!r}") from None
