"""Pages of the run list: what ``runs`` answers when the stores hold thousands of runs.

A page is at most ``limit`` runs (``DEFAULT_LIMIT``, at most ``MAX_LIMIT``) in
``run_id`` order (bytewise), after the run its ``cursor`` names, filtered by state
and by document. The order key is the run id because it never changes: a run
that changes state while someone pages is listed once, not lost and not listed
twice (unless the state filter itself no longer matches it); a run created while
someone pages is listed if its id sorts after the page they are on.

The reply always fits in one frame, whatever the runs hold: ``fit_page`` stops a
page at ``PAGE_BYTES`` of encoded summaries (then ``next_cursor`` goes on from
the last run it holds), and a run whose summary alone would not fit has its
``stop_message`` clipped (``status`` shows it whole).

A cursor is opaque to clients: ``c1.<base64url JSON>.<check>``, naming the last
run of the page and the filters it was made for. It is not a secret (it grants
nothing ``runs`` does not), but a garbled one, one made for other filters, or
one naming no well-formed run id is refused with ``E_BAD_CURSOR``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from cutter.core.errors import ErrorCode, InputError, InvalidIdentifier
from cutter.core.ids import check_doc_id, check_run_id
from cutter.core.protocol import MAX_FRAME_BYTES, RUNS_DEFAULT_LIMIT, RUNS_MAX_LIMIT, RunSummary
from cutter.core.quarantine import UnreadableRun
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState

Entry = RunSummary | UnreadableRun  # a page's entries, in run id order

if TYPE_CHECKING:
    from cutter.core.ports import RunStore

DEFAULT_LIMIT = RUNS_DEFAULT_LIMIT
MAX_LIMIT = RUNS_MAX_LIMIT
# What the summaries of one page may take; the rest of the frame is the envelope
# (reply tag, id up to a few hundred bytes, next_cursor under 1 KiB) with room to spare.
PAGE_BYTES = MAX_FRAME_BYTES - 64 * 1024
MAX_CURSOR_LENGTH = 1024
CLIPPED_MESSAGE_CHARS = 2000

_PREFIX = "c1"
_CHECK_KEY = b"iu-cutter runs cursor v1"
_encoder = msgspec.json.Encoder()


class BadCursor(InputError):
    """A ``runs`` cursor this daemon did not hand out, or for other filters."""

    code = ErrorCode.BAD_CURSOR

    def __init__(self, message: str) -> None:
        super().__init__(f"bad cursor: {message}; start again without --cursor")


class BadLimit(InputError):
    code = ErrorCode.BAD_LIMIT

    def __init__(self, limit: int) -> None:
        super().__init__(f"limit must be 1 to {MAX_LIMIT}, not {limit}")


class RunFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which runs a page lists: those in ``state`` and of ``doc_id`` (None: any)."""

    state: RunState | None = None
    doc_id: str | None = None

    def matches(self, state: RunState, doc_id: str) -> bool:
        return (self.state is None or state is self.state) and (
            self.doc_id is None or doc_id == self.doc_id
        )


class _Position(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after: str
    state: RunState | None
    doc_id: str | None


_position_decoder = msgspec.json.Decoder(_Position)


def check_filter(state: RunState | None, doc_id: str | None) -> RunFilter:
    return RunFilter(state=state, doc_id=None if doc_id is None else check_doc_id(doc_id))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadLimit(limit)
    return limit


def _check(body: bytes) -> str:
    return hmac.new(_CHECK_KEY, body, hashlib.sha256).hexdigest()[:16]


def encode_cursor(after: str, where: RunFilter) -> str:
    """The cursor of the page that starts after run ``after``, under ``where``."""
    body = _encoder.encode(_Position(after=after, state=where.state, doc_id=where.doc_id))
    text = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{_PREFIX}.{text}.{_check(body)}"


def decode_cursor(cursor: str, where: RunFilter) -> str:
    """The run id a cursor pages after; ``BadCursor`` unless ``encode_cursor`` made it
    for these same filters."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor(f"longer than {MAX_CURSOR_LENGTH} characters")
    prefix, _, rest = cursor.partition(".")
    text, _, check = rest.partition(".")
    if prefix != _PREFIX or not text or not check:
        raise BadCursor("not a cursor from `runs`")
    try:
        body = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadCursor("not a cursor from `runs`") from None
    if not hmac.compare_digest(check.encode(), _check(body).encode()):  # str: ASCII only
        raise BadCursor("its check does not match (garbled or altered)")
    try:
        position = _position_decoder.decode(body)
        after = check_run_id(position.after)
    except (msgspec.DecodeError, InvalidIdentifier):
        raise BadCursor("it names no run") from None
    if position.state is not where.state or position.doc_id != where.doc_id:
        raise BadCursor("it was made for other --state/--doc filters")
    return after


def fill_page(
    loaded: Iterable[Sidecar | UnreadableRun], limit: int, where: RunFilter
) -> list[Sidecar | UnreadableRun]:
    """A store's page: from ``loaded`` (its records in id order, read lazily), every
    unreadable one and the sidecars ``where`` matches, until ``limit``."""
    found: list[Sidecar | UnreadableRun] = []
    for record in loaded:
        if isinstance(record, UnreadableRun) or where.matches(record.state, record.doc_id):
            found.append(record)
            if len(found) == limit:
                break
    return found


def fit_page(runs: list[Entry], limit: int) -> tuple[list[Entry], bool]:
    """The first runs of ``runs`` (at most ``limit``) whose summaries fit in
    ``PAGE_BYTES``, and whether any were left out. Always at least one, if any: a
    summary too large alone has its stop message clipped."""
    page: list[Entry] = []
    used = 0
    for run in runs[:limit]:
        size = len(_encoder.encode(run)) + 1
        if size > PAGE_BYTES and isinstance(run, RunSummary):
            run = clipped(run)
            size = len(_encoder.encode(run)) + 1
        if page and used + size > PAGE_BYTES:
            return page, True
        page.append(run)
        used += size
    return page, len(runs) > len(page)


def clipped(run: RunSummary) -> RunSummary:
    message = run.stop_message or ""
    if len(message) <= CLIPPED_MESSAGE_CHARS:
        return run
    shown = message[:CLIPPED_MESSAGE_CHARS] + " … (clipped: `cutter status` shows it whole)"
    return msgspec.structs.replace(run, stop_message=shown)


@dataclass(frozen=True, slots=True)
class Page:
    runs: list[RunSummary]
    unreadable: list[UnreadableRun]  # in the page's id range, whatever the filter
    next_cursor: str | None  # None: the last page


async def page_of(store: RunStore, where: RunFilter, limit: int, cursor: str | None) -> Page:
    """One page: its runs, the unreadable runs among them, and the next cursor."""
    limit = check_limit(limit)
    after = "" if cursor is None else decode_cursor(cursor, where)
    found = await store.page(after, limit + 1, where)
    entries, more = fit_page(
        [e if isinstance(e, UnreadableRun) else RunSummary.of(e) for e in found], limit
    )
    return Page(
        runs=[e for e in entries if isinstance(e, RunSummary)],
        unreadable=[e for e in entries if isinstance(e, UnreadableRun)],
        next_cursor=encode_cursor(entries[-1].run_id, where) if more else None,
    )
