-- What the gate trusts is not writable by the role that writes IUs (issue 11, part 4).
--
-- The daemon's IU writer (cutter_writer) can edit runs and write kb_docs, so the gate
-- must not depend on anything it can write: the policy (kb_docs policy/current and
-- policy/changes/...), the approvals the daemon attests (kb_docs approvals/..., see
-- cutter.core.approvals.decision_kb_id), the consumption records (consumed_approvals) and
-- the kill switch. Those belong to a second role, cutter_control (the gatekeeper's);
-- roles.create_roles grants it and takes UPDATE on kill_switch and INSERT on
-- consumed_approvals from the writer. kb_docs is one table for both roles, so the
-- split by kb_id is this trigger: a write (INSERT, UPDATE, DELETE) of a row whose old
-- or new kb_id lies under policy/ or approvals/ is refused unless the session's LOGIN
-- (session_user, which SET ROLE does not change) is a member of cutter_control. Only
-- the table's owner or a superuser can drop or disable it.

-- The function pins its search_path: otherwise a login that may create objects (in
-- ``public`` before PostgreSQL 15) could plant its own pg_has_role or starts_with and
-- put it first on the search_path its session sets.
CREATE FUNCTION kb_docs_control_only() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
DECLARE
    ids text[] := ARRAY[]::text[];
    kb_id text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        ids := ids || OLD.kb_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        ids := ids || NEW.kb_id;
    END IF;
    FOREACH kb_id IN ARRAY ids LOOP
        IF (kb_id IN ('policy', 'approvals')
                OR starts_with(kb_id, 'policy/') OR starts_with(kb_id, 'approvals/'))
           AND NOT pg_has_role(session_user, 'cutter_control', 'MEMBER') THEN
            RAISE EXCEPTION 'kb_docs %: only a member of cutter_control may write it', kb_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER kb_docs_control_only BEFORE INSERT OR UPDATE OR DELETE ON kb_docs
    FOR EACH ROW EXECUTE FUNCTION kb_docs_control_only();

-- 0003's stamp calls now() the same way: a reviewer's own now() must not date its row.
ALTER FUNCTION db_approvals_stamp() SET search_path = pg_catalog;

-- A database whose roles were granted before this version: the writer loses what is
-- now the control role's at once (cutter db roles grants the control role).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cutter_writer') THEN
        REVOKE UPDATE ON kill_switch FROM cutter_writer;
        REVOKE INSERT, UPDATE, DELETE ON consumed_approvals FROM cutter_writer;
    END IF;
END
$$;
