"""Turn the operating system's "cannot write here" into typed errors.

A full disk or quota (``ENOSPC``, ``EDQUOT``) is ``StorageFull``; a read-only
mount or a directory this process may not write (``EROFS``, ``EACCES``,
``EPERM``) is ``StorageReadOnly``. Every other ``OSError`` stays what it is (a
bug or a race the caller handles). The files the daemon writes outside its
database (the owner lock, its log, the socket) use them; the database's own
errors are typed by ``cutter.stores.sqlite.database.storage_error``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cutter.core.errors import StorageError, StorageFull, StorageReadOnly

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def storage_error(exc: OSError, location: Path | str | None = None) -> StorageError | None:
    """The typed error ``exc`` is, or None when it is not about storage."""
    where = str(location if location is not None else exc.filename or "a store")
    reason = exc.strerror or type(exc).__name__
    if exc.errno in FULL:
        return StorageFull(where, reason)
    if exc.errno in READ_ONLY:
        return StorageReadOnly(where, reason)
    return None


@contextmanager
def typed_storage_errors(location: Path | str) -> Iterator[None]:
    """Re-raise a storage ``OSError`` in the block as ``StorageFull``/``StorageReadOnly``."""
    try:
        yield
    except OSError as exc:
        typed = storage_error(exc, location)
        if typed is None:
            raise
        raise typed from exc
