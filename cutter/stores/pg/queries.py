"""Every SQL statement the adapters run, in one place. Parameters only.

Text orders use ``COLLATE "C"`` (code point order), as Python sorts, whatever the
database's default collation."""

from __future__ import annotations

# --- sources ----------------------------------------------------------------
CURRENT_VERSION = """
SELECT v.doc_id, d.sd_id, v.sv_id, v.sha256, v.size
FROM documents d JOIN source_versions v ON v.sv_id = d.current_sv_id
WHERE d.doc_id = $1
"""
VERSION_CONTENT = "SELECT content FROM source_versions WHERE sv_id = $1"
VERSION_STORED_SHA = "SELECT encode(sha256(content), 'hex') FROM source_versions WHERE sv_id = $1"
MARK_CUT = "UPDATE source_versions SET cut_by = $2 WHERE sv_id = $1 AND cut_by IS NULL"
CUT_BY = "SELECT cut_by FROM source_versions WHERE sv_id = $1"
SET_CUT = "UPDATE source_versions SET cut_by = $2 WHERE sv_id = $1"
UPSERT_DOCUMENT = """
INSERT INTO documents (doc_id, sd_id) VALUES ($1, $2) ON CONFLICT (doc_id) DO NOTHING
"""
INSERT_VERSION = """
INSERT INTO source_versions (sv_id, doc_id, sha256, size, content)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sv_id) DO NOTHING
"""
VERSION_OWNER = "SELECT doc_id, sha256 FROM source_versions WHERE sv_id = $1"
SET_CURRENT = "UPDATE documents SET current_sv_id = $2 WHERE doc_id = $1"

# --- IUs --------------------------------------------------------------------
IU_TABLE = "ius"  # COPY targets are names, not statements
STAGE_NAME = "iu_stage"
IU_COLUMNS = (
    "doc_id",
    "sv_id",
    "ordinal",
    "iu_id",
    "label",
    "kind",
    "start_byte",
    "end_byte",
    "region_sha",
    "body",
    "state",
    "change_set_id",
)
_IU_SELECT = "SELECT " + ", ".join(IU_COLUMNS) + " FROM ius"
DOC_ROWS = _IU_SELECT + ' WHERE doc_id = $1 ORDER BY sv_id COLLATE "C", ordinal'
CHANGE_SET_ROWS = _IU_SELECT + " WHERE change_set_id = $1 ORDER BY ordinal"
STAGE_TABLE = "CREATE TEMP TABLE iu_stage (LIKE ius INCLUDING DEFAULTS) ON COMMIT DROP"
INSERT_STAGED = """
INSERT INTO ius SELECT * FROM iu_stage ON CONFLICT (doc_id, sv_id, ordinal) DO NOTHING
"""
STAGE_CONFLICTS = """
SELECT i.doc_id, i.sv_id, i.ordinal, i.change_set_id
FROM ius i JOIN iu_stage s USING (doc_id, sv_id, ordinal)
WHERE i.change_set_id <> s.change_set_id OR i.region_sha <> s.region_sha
LIMIT 1
"""
SUPERSEDE_OTHERS = """
UPDATE ius SET state = 'superseded'
WHERE doc_id = $1 AND state = 'active' AND change_set_id <> $2
"""
ACTIVATE = "UPDATE ius SET state = 'active' WHERE change_set_id = $1 AND state <> 'active'"
COUNT_ACTIVE = "SELECT count(*) FROM ius WHERE change_set_id = $1 AND state = 'active'"
CHANGE_SET_DOC = "SELECT doc_id FROM ius WHERE change_set_id = $1 LIMIT 1"
DELETE_DOC_ROWS = "DELETE FROM ius WHERE doc_id = $1"
INSERT_BACKUP = """
INSERT INTO backups (backup_id, doc_id, payload) VALUES ($1, $2, $3)
ON CONFLICT (backup_id) DO NOTHING
"""
LOAD_BACKUP = "SELECT payload FROM backups WHERE backup_id = $1"
LIST_BACKUPS = """
SELECT backup_id, payload, created_at FROM backups WHERE doc_id = $1
ORDER BY created_at, backup_id COLLATE "C"
"""

# --- ledger -----------------------------------------------------------------
# An advisory lock, not LOCK TABLE: that would need privileges an append-only writer lacks.
LEDGER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('iu-cutter ledger'))"
LEDGER_BY_ENVELOPE = """
SELECT seq, prev_hash, entry_hash, envelope FROM ledger WHERE envelope_sha = $1
"""
LEDGER_AT = "SELECT seq, prev_hash, entry_hash, envelope FROM ledger WHERE seq = $1"
LEDGER_HEAD = "SELECT seq, prev_hash, entry_hash, envelope FROM ledger ORDER BY seq DESC LIMIT 1"
LEDGER_INSERT = """
INSERT INTO ledger (seq, prev_hash, entry_hash, envelope, envelope_sha)
VALUES ($1, $2, $3, $4, $5)
"""
LEDGER_ALL = "SELECT seq, prev_hash, entry_hash, envelope, envelope_sha FROM ledger ORDER BY seq"

# --- grants -----------------------------------------------------------------
WHO_AM_I = "SELECT current_user"
HAS_PRIVILEGE = "SELECT has_table_privilege(current_user, $1, $2)"

# --- KB -----------------------------------------------------------------------
KB_PUT = """
INSERT INTO kb_docs (kb_id, doc) VALUES ($1, $2)
ON CONFLICT (kb_id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()
WHERE kb_docs.doc IS DISTINCT FROM EXCLUDED.doc
"""
KB_GET = "SELECT doc FROM kb_docs WHERE kb_id = $1"
# Migration 0003: an approval a reviewer inserted as their own login (cutter.core.db_approvals).
DB_APPROVAL_GET = """
SELECT run_id, gate, request_digest, nonce, decision, reason, review_decision_id,
       issued_at, principal
FROM db_approvals WHERE approval_id = $1
"""
DB_APPROVAL_INSERT = """
INSERT INTO db_approvals
    (approval_id, run_id, gate, request_digest, nonce, decision, reason, review_decision_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING principal, issued_at
"""
KB_SHA256 = "SELECT sha256(doc) FROM kb_docs WHERE kb_id = $1"
KB_LIST = """
SELECT kb_id FROM kb_docs
WHERE $1 = '' OR kb_id = $1 OR starts_with(kb_id, $1 || '/')
ORDER BY kb_id COLLATE "C"
"""

# --- runs ---------------------------------------------------------------------
# Compare-and-save (migration 0006, cutter.core.run_revision): only over the revision
# just before the sidecar's; no row updated is a stale walker or an unknown run.
RUN_SAVE = """
UPDATE runs SET doc_id = $2, state = $3, sidecar = $4, revision = $5, updated_at = now()
WHERE run_id = $1 AND revision = $5 - 1
"""
RUN_REVISION = "SELECT revision FROM runs WHERE run_id = $1"
RUN_CREATE = """
INSERT INTO runs (run_id, doc_id, state, sidecar, revision) VALUES ($1, $2, $3, $4, $5)
"""
# The unique index of migration 0002; its violation is a busy document.
ONE_OPEN_RUN_INDEX = "runs_one_open_per_document"
OPEN_RUN_OF = """
SELECT run_id FROM runs
WHERE doc_id = $1 AND state NOT IN ('CLOSEOUT_REPORTED', 'REJECTED', 'ABORTED', 'FAILED')
"""
RUN_LOAD = "SELECT sidecar FROM runs WHERE run_id = $1"
RUN_IDS = 'SELECT run_id FROM runs ORDER BY run_id COLLATE "C"'


def run_page(by_state: bool, by_doc: bool) -> str:
    """A page of runs after $1, at most $2, in the order of migration 0005's indexes;
    $3 the state and $4 the document when filtered by them. Only fixed text: the
    values are parameters."""
    where = ['run_id COLLATE "C" > $1']
    if by_state:
        where.append("state = $3")
    if by_doc:
        where.append(f"doc_id = ${4 if by_state else 3}")
    return (
        "SELECT run_id, sidecar FROM runs WHERE "
        + " AND ".join(where)
        + ' ORDER BY run_id COLLATE "C" LIMIT $2'
    )


CONSUME = """
INSERT INTO consumed_approvals (approval_kb_id, run_id, consumed_at) VALUES ($1, $2, $3)
ON CONFLICT (approval_kb_id) DO NOTHING
RETURNING approval_kb_id
"""
CONSUMED_BY = "SELECT run_id FROM consumed_approvals WHERE approval_kb_id = $1"
CONSUMED_FOR = """
SELECT approval_kb_id FROM consumed_approvals WHERE run_id = $1
ORDER BY approval_kb_id COLLATE "C"
"""

# --- kill switch and document locks -------------------------------------------
KILL_SWITCH_STATE = "SELECT engaged FROM kill_switch WHERE id"
KILL_SWITCH_SET = "UPDATE kill_switch SET engaged = $1, reason = $2, changed_at = now() WHERE id"
TRY_DOC_LOCK = "SELECT pg_try_advisory_lock(hashtext('iu-cutter doc'), hashtext($1))"
DOC_UNLOCK = "SELECT pg_advisory_unlock(hashtext('iu-cutter doc'), hashtext($1))"
DOC_LOCK_HOLDER = """
SELECT a.application_name, a.pid
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = hashtext('iu-cutter doc')::oid AND l.objid = hashtext($1)::oid
LIMIT 1
"""
SET_APPLICATION_NAME = "SELECT set_config('application_name', $1, false)"
