-- The notification outbox (issue 15, docs/notifications.md): PostgreSQL's migration 0007
-- in SQLite's dialect. A run store inserts the notices of every sidecar it saves
-- (cutter.core.notices.notices_for) into outbox in the transaction of the save, once per
-- notice_id, so a crash between a transition and its delivery cannot lose the notice.
-- The daemon's deliverer fans each notice out into one deliveries row per webhook that
-- wants it (dispatched = 1 in the same transaction) and records every attempt there.
-- Timestamps are fixed-width UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ): they sort as times.

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY,
    notice_id  TEXT NOT NULL UNIQUE,
    run_id     TEXT NOT NULL,
    event      TEXT NOT NULL,
    notice     BLOB NOT NULL,           -- the notice's JSON: the exact body a webhook is sent
    dispatched INTEGER NOT NULL DEFAULT 0 CHECK (dispatched IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX outbox_undispatched ON outbox (seq) WHERE dispatched = 0;
CREATE INDEX outbox_by_run ON outbox (run_id, seq);

CREATE TABLE deliveries (
    notice_id  TEXT NOT NULL REFERENCES outbox (notice_id),
    endpoint   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL CHECK (attempts >= 0),
    next_at    TEXT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (notice_id, endpoint)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
