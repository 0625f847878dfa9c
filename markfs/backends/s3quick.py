"""Requests to S3 without the client's request pipeline: signed by botocore's own signer
and sent by the client's HTTP session (its pool, timeouts, proxies and CA bundle) — a
third of the client's CPU a request, for the many HEADs that complete a listing and the
PUTs of small files; and the body of an upload that a cancel stops."""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from markfs.backends.base import UploadControl


def send_signed(client: Any, session: Any, bucket: str, method: str, key: str,
            body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    """The HTTP response to a request signed by botocore's signer and sent by the
    client's HTTP session; None where it could not be sent."""
    credentials = session.get_credentials()
    if credentials is None:
        return None
    url = "/".join((client.meta.endpoint_url.rstrip("/"),
                    urllib.parse.quote(bucket, safe=""),
                    urllib.parse.quote(key, safe="/~")))
    request = AWSRequest(method=method, url=url, data=body or None, headers=headers)
    S3SigV4Auth(credentials.get_frozen_credentials(), "s3",
                client.meta.region_name).add_auth(request)
    try:
        return client._endpoint.http_session.send(request.prepare())
    except Exception:  # (connection trouble: the client's retries decide)
        return None


class QuickRequests:
    """HEADs and small PUTs to one bucket the quick way (`send_signed`)."""

    def __init__(self, client: Any, session: Any, bucket: str) -> None:
        self._client, self._session, self._bucket = client, session, bucket

    def head(self, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(answered, the HEAD's fields or None for no such object). Not answered: anything
        but a 200 or a 404, for the client to ask again with its retries and errors."""
        response = self._send("HEAD", key)
        if response is None or response.status_code not in (200, 404):
            return False, None
        return True, None if response.status_code == 404 else head_fields(response.headers)

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """False: not stored this way (no credentials, an error, a connection lost): the
        client is to try, with its retries."""
        headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
        response = self._send("PUT", key, body, headers)
        return response is not None and response.status_code == 200

    def _send(self, method: str, key: str, body: bytes = b"",
              headers: dict[str, str] | None = None) -> Any:
        return send_signed(self._client, self._session, self._bucket, method, key, body,
                           headers)


def head_fields(headers: Mapping[str, str]) -> dict[str, Any]:
    """What `S3Entries.from_head` reads of a HEAD, from its HTTP headers (as boto3 names it)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {"LastModified": parsedate_to_datetime(lowered["last-modified"]),
            "ContentLength": int(lowered.get("content-length", "0")),
            "ETag": lowered.get("etag"),
            "Metadata": {k[len("x-amz-meta-"):]: v for k, v in lowered.items()
                         if k.startswith("x-amz-meta-")}}


class CancellableBody(io.RawIOBase):
    """Bytes to send that stop being readable once the upload is cancelled: an upload in
    flight ends within one socket write of the cancel, not at the end of its part."""

    def __init__(self, data: bytes, control: UploadControl) -> None:
        self._data, self._control, self._pos = memoryview(data), control, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        self._control.check()
        piece = self._data[self._pos:self._pos + len(buffer)]
        buffer[:len(piece)] = piece
        self._pos += len(piece)
        return len(piece)
