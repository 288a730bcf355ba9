-- iu-cutter schema, version 1.
-- Target tables (documents, source_versions, ius, ledger, backups) hold the
-- production data a cut changes; kb_docs, runs and consumed_approvals are the
-- orchestrator's own records; kill_switch is the operators' brake.

CREATE TABLE documents (
    doc_id        text PRIMARY KEY,
    sd_id         text NOT NULL,
    current_sv_id text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE source_versions (
    sv_id      text PRIMARY KEY,
    doc_id     text NOT NULL REFERENCES documents (doc_id),
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size       bigint NOT NULL CHECK (size = octet_length(content)),
    content    bytea NOT NULL,
    cut_by     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE documents
    ADD CONSTRAINT documents_current_sv_fk
    FOREIGN KEY (current_sv_id) REFERENCES source_versions (sv_id);

CREATE TABLE ius (
    doc_id        text NOT NULL,
    sv_id         text NOT NULL REFERENCES source_versions (sv_id),
    ordinal       integer NOT NULL CHECK (ordinal >= 0),
    iu_id         text NOT NULL,
    label         text NOT NULL,
    kind          text NOT NULL,
    start_byte    bigint NOT NULL CHECK (start_byte >= 0),
    end_byte      bigint NOT NULL CHECK (end_byte > start_byte),
    region_sha    text NOT NULL,
    body          bytea NOT NULL CHECK (octet_length(body) = end_byte - start_byte),
    state         text NOT NULL CHECK (state IN ('staged', 'active', 'superseded')),
    change_set_id text NOT NULL,
    PRIMARY KEY (doc_id, sv_id, ordinal)
);
CREATE INDEX ius_change_set_idx ON ius (change_set_id, ordinal);

CREATE TABLE ledger (
    seq           bigint PRIMARY KEY CHECK (seq >= 0),
    prev_hash     text NOT NULL,
    entry_hash    text NOT NULL UNIQUE,
    envelope      bytea NOT NULL,          -- the canonical bytes the hash is taken over
    envelope_sha  text NOT NULL UNIQUE,    -- one entry per distinct envelope: appends are idempotent
    recorded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backups (
    backup_id  text PRIMARY KEY,
    doc_id     text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kb_docs (
    kb_id      text PRIMARY KEY,
    doc        bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    run_id     text PRIMARY KEY,
    doc_id     text NOT NULL,
    state      text NOT NULL,
    sidecar    bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumed_approvals (
    approval_kb_id text PRIMARY KEY,
    run_id         text NOT NULL,
    consumed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kill_switch (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    engaged    boolean NOT NULL,
    reason     text NOT NULL DEFAULT '',
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO kill_switch (engaged) VALUES (false);
