-- Deleted means gone. A turn whose answer cited a document that was later deleted keeps
-- its citations' numbers but loses their text (shared/store/history.py redacts them in
-- the delete's transaction); the flag says so without reading the citations. The GIN
-- index finds a document's citations (and a redacted chunk's) by JSON containment.
ALTER TABLE chat_turns ADD COLUMN has_redacted_citations boolean NOT NULL DEFAULT false;
CREATE INDEX chat_turns_citations ON chat_turns USING gin (citations jsonb_path_ops);
CREATE INDEX chat_turns_retrieved ON chat_turns USING gin (retrieved jsonb_path_ops);

-- A signed upload URL handed out for a document: the object it names, and when the URL
-- stops working. The object's arrival settles (deletes) the row; the sweeper expires a
-- row whose object never came (expired_at set, the row stays as a tombstone for a
-- while so an object that still arrives is refused) and removes the document it was
-- created for when it has no version and no other pending upload.
CREATE TABLE upload_intents (
    object_name text PRIMARY KEY,
    document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kb_id       uuid NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    expired_at  timestamptz
);
CREATE INDEX upload_intents_pending ON upload_intents (expires_at) WHERE expired_at IS NULL;
CREATE INDEX upload_intents_document ON upload_intents (document_id);
