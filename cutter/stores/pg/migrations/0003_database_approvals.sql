-- Approvals straight through PostgreSQL (issue 11, part 5): a reviewer inserts a
-- decision as their own login; the database, not the client, says who that was.
--
-- ``principal`` and ``issued_at`` are stamped by the trigger below on every insert,
-- whatever the client wrote, and roles.create_roles grants the reviewer group
-- (cutter_reviewer) INSERT on the other columns only, so naming a principal is
-- refused outright. Nobody but the owner may UPDATE or DELETE a row; the daemon's
-- role (cutter_writer) may only read them. The gatekeeper serves row X as the KB
-- approval ``db-approvals/X`` (cutter.stores.pg.records), whose proof is "database".

CREATE TABLE db_approvals (
    approval_id        text PRIMARY KEY CHECK (approval_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    run_id             text NOT NULL,
    gate               text NOT NULL CHECK (gate IN ('SG_1', 'SG_2')),
    request_digest     text NOT NULL,
    nonce              text NOT NULL,
    decision           text NOT NULL CHECK (decision IN ('approve', 'reject')),
    reason             text NOT NULL,
    review_decision_id text,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    principal          text NOT NULL DEFAULT session_user
);

CREATE FUNCTION db_approvals_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.principal := session_user;
    NEW.issued_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER db_approvals_stamp BEFORE INSERT ON db_approvals
    FOR EACH ROW EXECUTE FUNCTION db_approvals_stamp();
