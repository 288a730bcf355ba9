-- iu-cutter embedded schema, version 1: PostgreSQL's schema (cutter/stores/pg/migrations
-- 0001-0006) in SQLite's dialect, as one file since no embedded database predates it.
-- STRICT tables refuse a value of the wrong type as PostgreSQL would. Timestamps
-- are RFC 3339 text. Text sorts by BINARY collation: bytewise, as Python sorts ids.
-- No db_approvals: a reviewer's database login exists on PostgreSQL only.

CREATE TABLE documents (
    doc_id        TEXT PRIMARY KEY,
    sd_id         TEXT NOT NULL,
    current_sv_id TEXT REFERENCES source_versions (sv_id),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE source_versions (
    sv_id      TEXT PRIMARY KEY,
    doc_id     TEXT NOT NULL REFERENCES documents (doc_id),
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    size       INTEGER NOT NULL CHECK (size = length(content)),
    content    BLOB NOT NULL,
    cut_by     TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE ius (
    doc_id        TEXT NOT NULL,
    sv_id         TEXT NOT NULL REFERENCES source_versions (sv_id),
    ordinal       INTEGER NOT NULL CHECK (ordinal >= 0),
    iu_id         TEXT NOT NULL,
    label         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    start_byte    INTEGER NOT NULL CHECK (start_byte >= 0),
    end_byte      INTEGER NOT NULL CHECK (end_byte > start_byte),
    region_sha    TEXT NOT NULL,
    body          BLOB NOT NULL CHECK (length(body) = end_byte - start_byte),
    state         TEXT NOT NULL CHECK (state IN ('staged', 'active', 'superseded')),
    change_set_id TEXT NOT NULL,
    PRIMARY KEY (doc_id, sv_id, ordinal)
) STRICT;
CREATE INDEX ius_change_set_idx ON ius (change_set_id, ordinal);

CREATE TABLE ledger (
    seq          INTEGER PRIMARY KEY CHECK (seq >= 0),
    prev_hash    TEXT NOT NULL,
    entry_hash   TEXT NOT NULL UNIQUE,
    envelope     BLOB NOT NULL,           -- the canonical bytes the hash is taken over
    envelope_sha TEXT NOT NULL UNIQUE,    -- one entry per distinct envelope: appends are idempotent
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
-- Append-only, as the writer's grants make it on PostgreSQL.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

CREATE TABLE backups (
    backup_id  TEXT PRIMARY KEY,
    doc_id     TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE kb_docs (
    kb_id      TEXT PRIMARY KEY,
    doc        BLOB NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY,
    doc_id     TEXT NOT NULL,
    state      TEXT NOT NULL,
    revision   INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
    sidecar    BLOB NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
-- One open run per document (cutter.core.states.TERMINAL are the states that free it).
CREATE UNIQUE INDEX runs_one_open_per_document ON runs (doc_id)
    WHERE state NOT IN ('CLOSEOUT_REPORTED', 'REJECTED', 'ABORTED', 'FAILED');
-- Pages of the run list (cutter.core.run_pages); the primary key serves the unfiltered one.
CREATE INDEX runs_page_by_state ON runs (state, run_id);
CREATE INDEX runs_page_by_doc ON runs (doc_id, run_id);

CREATE TABLE consumed_approvals (
    approval_kb_id TEXT PRIMARY KEY,
    run_id         TEXT NOT NULL,
    consumed_at    TEXT NOT NULL
) STRICT;
CREATE INDEX consumed_approvals_by_run ON consumed_approvals (run_id, approval_kb_id);

CREATE TABLE kill_switch (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    engaged    INTEGER NOT NULL CHECK (engaged IN (0, 1)),
    reason     TEXT NOT NULL DEFAULT '',
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
INSERT INTO kill_switch (id, engaged) VALUES (1, 0);

-- Written by each durability barrier (cutter.stores.sqlite.database.Database.durable): a commit
-- under synchronous=FULL syncs the WAL only when it writes a frame.
CREATE TABLE durable_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO durable_mark (id, n) VALUES (1, 0);
