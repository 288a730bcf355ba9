"""Is a source text? Binary and UTF-16/32 input, said plainly.

The discoverer reads UTF-8 (undecodable bytes are carried losslessly, so offsets
stay exact). A file that is not text at all (a NUL byte: an executable, an
archive, UTF-16 text of Latin letters) or that starts with a UTF-16/UTF-32 byte
order mark would be planned as one "document" unit whose labels mean nothing.

- ``not_text_reason``: why ``data`` is not text, or None. ``cutter add-document``
  and ``cutter plan`` refuse such input (``DocumentNotText``, ``E_DOCUMENT_NOT_TEXT``).
- ``content_warnings``: what every discovery reports about it, so a document
  stored another way (``--dsn`` by hand, an older version) shows the same in
  ``cutter plan`` and in the review a gate authorises: the same reason, and a
  warning for bytes that are not valid UTF-8 (Latin-1, say), whose labels may be
  garbled although every region is exact.
"""

from __future__ import annotations

_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


def not_text_reason(data: bytes) -> str | None:
    """Why ``data`` is not a text the discoverer can cut, or None when it is."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return f"the source is {encoding} text (byte order mark): convert it to UTF-8"
    nul = data.find(b"\x00")
    if nul >= 0:
        return f"the source is binary, not text (a NUL byte at offset {nul})"
    return None


def content_warnings(data: bytes) -> list[str]:
    """The warnings a discovery of ``data`` carries about its content."""
    reason = not_text_reason(data)
    if reason is not None:
        return [reason]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [
            f"the source is not valid UTF-8 from byte {exc.start}: labels may be garbled"
            " (regions stay exact)"
        ]
    return []


def require_text(data: bytes) -> None:
    """``DocumentNotText`` when ``data`` is not text (see ``not_text_reason``)."""
    from cutter.core.errors import DocumentNotText

    reason = not_text_reason(data)
    if reason is not None:
        raise DocumentNotText(reason)
