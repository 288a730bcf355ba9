-- Pages of the run list (cutter.core.run_pages): runs in run_id order, bytewise, after a
-- cursor, optionally of one state or one document. Each index serves one of the
-- queries of cutter.stores.pg.queries.run_page, so a page reads only the rows it answers
-- (the primary key's collation is the database's, which need not be bytewise).

CREATE INDEX runs_page_by_id ON runs (run_id COLLATE "C");
CREATE INDEX runs_page_by_state ON runs (state, run_id COLLATE "C");
CREATE INDEX runs_page_by_doc ON runs (doc_id, run_id COLLATE "C");
