-- One open run per document: a run holds its document from its creation until it
-- ends in a terminal state (cutter.core.states.TERMINAL). HALTED and ROLLBACK_PENDING are
-- open. The index belongs to the migrating role, not to cutter_writer, which
-- therefore cannot drop it.
--
-- A database that already holds two open runs of one document (possible before this
-- version) fails here, changing nothing: abort one of them and migrate again.

CREATE UNIQUE INDEX runs_one_open_per_document ON runs (doc_id)
    WHERE state NOT IN ('CLOSEOUT_REPORTED', 'REJECTED', 'ABORTED', 'FAILED');
