"""The largest document iu-cutter stores or plans: ``MAX_DOCUMENT_BYTES`` (16 MiB).

Discovery's time and memory grow with the document (linearly, see
``cutter.discovery.text``): at 16 MiB a cut takes seconds in a worker and a few
hundred MiB at most; a 200 MB file took minutes and 1.7 GB. The largest corpus
document is 0.5 MB, and a long code of law is a few MB. A larger file is refused
with ``E_DOCUMENT_TOO_LARGE`` by ``cutter add-document`` (before it is read whole)
and by every store's ``publish`` (nothing stored), and a stored version over the
limit (stored before the limit, or by another tool) stops its run at ``source_pin``
with ``STOP_DOCUMENT_TOO_LARGE`` before a byte of it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from cutter.core.errors import DocumentTooLarge

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def check_document_size(size: int, what: str = "the document") -> None:
    """``DocumentTooLarge`` when ``size`` bytes are over ``MAX_DOCUMENT_BYTES``."""
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(size, MAX_DOCUMENT_BYTES, what)


def read_document(path: Path) -> bytes:
    """``path``'s bytes, refused before reading when the file is over the limit (and
    refused still when it grew past the limit while read)."""
    with path.open("rb") as file:
        check_document_size(os.fstat(file.fileno()).st_size, str(path))
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    check_document_size(len(data), str(path))
    return data
