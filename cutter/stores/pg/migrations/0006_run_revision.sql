-- Compare-and-save on runs (issue 13): every save of a run writes the sidecar's
-- revision, and only over the revision just before it (cutter.core.run_revision), in one
-- UPDATE ... WHERE run_id = $1 AND revision = $n - 1. A walker holding a stale
-- copy updates no row and is refused (RunChanged) instead of writing over another
-- walker's progress, with no read before the write.
--
-- Existing rows are revision 0: their stored sidecars carry no revision and decode
-- as revision 0, so the column and the sidecar agree. Adding a column with a
-- constant default rewrites nothing (PostgreSQL 11 or later); the roles' grants are
-- on the table, so the writer and the control role may write it without a re-grant.

ALTER TABLE runs ADD COLUMN revision bigint NOT NULL DEFAULT 0 CHECK (revision >= 0);
