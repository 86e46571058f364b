-- How often the sweeper re-drove a version that stopped making progress; after a few
-- tries the version fails instead of staying "in progress" forever.
ALTER TABLE document_versions ADD COLUMN sweeps integer NOT NULL DEFAULT 0;
CREATE INDEX document_versions_in_progress ON document_versions (updated_at)
    WHERE status IN ('received', 'parsing', 'chunking', 'embedding', 'indexing');
