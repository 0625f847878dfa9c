"""What a failed S3 request means to a file operation: its S3 error code, and the
OSError (errno and a line without secrets) the namespace reports for it."""

from __future__ import annotations

import errno

import botocore.exceptions

from markfs.errors import SourceRefused

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "AllAccessDisabled", "AccountProblem"}
BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)

def error_code(exc: Exception) -> str:
    """The S3 error code of a failed request ("" for connection-level failures)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def as_os_error(exc: Exception, what: str) -> OSError:
    """An OSError with the errno a file operation should report (no secrets in text)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        if code in NOT_FOUND:
            return OSError(errno.ENOENT, f"{what}: not found")
        if code == "NoSuchBucket":
            return SourceRefused(errno.EIO, f"{what}: the bucket does not exist (NoSuchBucket)")
        if code in DENIED:
            return SourceRefused(errno.EACCES, f"{what}: access denied ({code})")
        return OSError(errno.EIO, f"{what}: {code}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return SourceRefused(errno.EACCES, f"{what}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                                     "AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return OSError(errno.EIO, f"{what}: {str(exc).splitlines()[0] or type(exc).__name__}")
    return OSError(errno.EIO, f"{what}: {exc}")
