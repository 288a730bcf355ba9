-- The notification outbox (issue 15, docs/notifications.md). A run store inserts the
-- notices of every sidecar it saves (cutter.core.notices.notices_for) into outbox in the
-- transaction of the save, once per notice_id (ON CONFLICT DO NOTHING), so a crash
-- between a transition and its delivery cannot lose the notice: the Transactional
-- Outbox pattern. The daemon's deliverer fans each notice out into one deliveries row
-- per webhook that wants it (setting dispatched in the same transaction) and records
-- every attempt there: its count, when the next is due, the last error.
--
-- The tables belong with runs, not with the target tables a cut writes: the writer
-- saves runs (so inserts notices) and runs the deliverer (so fans out and records
-- attempts); the control role saves a run with an approval's consumption (so inserts
-- notices). cutter db roles grants them (cutter.stores.pg.roles); a database whose
-- roles were granted before this version is granted here (the default role names), as
-- 0004 revoked there, so its runs can still be saved.
-- Where notices go (the webhooks) is the policy's, which only the control role writes.

CREATE TABLE outbox (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notice_id  text NOT NULL UNIQUE,
    run_id     text NOT NULL,
    event      text NOT NULL,
    notice     bytea NOT NULL,
    dispatched boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_undispatched ON outbox (seq) WHERE NOT dispatched;
CREATE INDEX outbox_by_run ON outbox (run_id, seq);

CREATE TABLE deliveries (
    notice_id  text NOT NULL REFERENCES outbox (notice_id),
    endpoint   text NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   integer NOT NULL CHECK (attempts >= 0),
    next_at    timestamptz NOT NULL,
    last_error text,
    PRIMARY KEY (notice_id, endpoint)
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cutter_writer') THEN
        GRANT SELECT, INSERT, UPDATE ON outbox, deliveries TO cutter_writer;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cutter_control') THEN
        GRANT SELECT, INSERT ON outbox TO cutter_control;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cutter_reader') THEN
        GRANT SELECT ON outbox, deliveries TO cutter_reader;
    END IF;
END
$$;
