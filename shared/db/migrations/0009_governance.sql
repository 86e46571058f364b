-- Governance: approval of new versions, archiving, edited titles.
--
-- A knowledge base with require_approval keeps a version that finished indexing in
-- `awaiting_approval` instead of making it the document's active version; an editor's
-- approval activates it (documents.active_version_id only ever names an approved
-- version). An archived document keeps its versions and chunks but no read path sees it
-- (shared/store/scope.py).
ALTER TABLE knowledge_bases ADD COLUMN require_approval boolean NOT NULL DEFAULT false;

ALTER TABLE document_versions DROP CONSTRAINT document_versions_status_check;
ALTER TABLE document_versions ADD CONSTRAINT document_versions_status_check CHECK (status IN (
    'awaiting_upload', 'received', 'parsing', 'chunking', 'embedding', 'indexing',
    'awaiting_approval', 'ready', 'failed', 'superseded'));
-- When the version became active, and who approved it (NULL: activated without
-- approval, the knowledge base did not require one).
ALTER TABLE document_versions
    ADD COLUMN approved_at timestamptz,
    ADD COLUMN approved_by text;
UPDATE document_versions SET approved_at = coalesce(ready_at, updated_at)
WHERE status IN ('ready', 'superseded') AND ready_at IS NOT NULL;

ALTER TABLE documents
    ADD COLUMN archived_at timestamptz,
    ADD COLUMN archived_by text,
    -- Set when someone edits the title: a later version's parsed title no longer
    -- replaces it.
    ADD COLUMN title_edited_by text;
