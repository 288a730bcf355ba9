"""Reading a secret from a file (a webhook's HMAC key), refusing what could leak it.

The file must be a regular file (not a symlink: ``O_NOFOLLOW``), owned by this
process's user, readable by nobody else (no group or other bits, as ``ssh`` asks of a
private key) and at most ``MAX_SECRET_BYTES``; its content, without the trailing
newline, is the secret. Anything else is ``SecretFileUnreadable`` naming the path and
the reason, never a byte of the content. Read each time it is used, so rotating the
file takes effect at the next delivery.
"""

from __future__ import annotations

import os
import stat

from cutter.core.errors import CutterError, ErrorCode

MAX_SECRET_BYTES = 4096


class SecretFileUnreadable(CutterError):
    code = ErrorCode.SECRET_FILE_UNREADABLE

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"secret file {path}: {reason}")


def read_secret_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SecretFileUnreadable(path, exc.strerror or type(exc).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileUnreadable(path, "not a regular file")
        if info.st_uid != os.geteuid():
            raise SecretFileUnreadable(path, "owned by another user")
        if info.st_mode & 0o077:
            raise SecretFileUnreadable(path, "readable by group or others: chmod 600 it")
        if info.st_size > MAX_SECRET_BYTES:
            raise SecretFileUnreadable(path, f"larger than {MAX_SECRET_BYTES} bytes")
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileUnreadable(path, exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    secret = data.rstrip(b"\r\n")
    if not secret:
        raise SecretFileUnreadable(path, "empty")
    return secret
