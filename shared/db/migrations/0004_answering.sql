-- Answering: what retrieval knows about a version beyond its chunks, and chat history.

-- A version's date (the file's own creation date, else when it was received) answers
-- "latest"/"most recent" questions; its profile (file name, title and opening text, where
-- documents name their subject) routes questions that name a company, product or person
-- to the documents about it.
ALTER TABLE document_versions
    ADD COLUMN source_date timestamptz,
    ADD COLUMN profile tsvector;
CREATE INDEX document_versions_profile ON document_versions USING gin (profile);

-- Full-text search of one knowledge base's chunks filters on kb_id first.
CREATE INDEX chunks_kb_version ON chunks (kb_id, version_id);

CREATE TABLE chat_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    principal    text NOT NULL,
    title        text NOT NULL DEFAULT '',
    kb_ids       uuid[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_owner ON chat_sessions (workspace_id, principal, updated_at DESC);

-- One question and its answer. A regenerated answer is a new turn pointing at the one
-- it replaces, so history keeps both and follow-ups read the newest.
CREATE TABLE chat_turns (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id          uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    number              integer NOT NULL CHECK (number >= 1),
    question            text NOT NULL,
    standalone_question text NOT NULL,
    kb_ids              uuid[] NOT NULL,
    top_k               integer NOT NULL,
    filters             jsonb NOT NULL DEFAULT '{}'::jsonb,
    status              text NOT NULL CHECK (status IN (
                            'answering', 'answered', 'failed', 'cancelled')),
    answer              text NOT NULL DEFAULT '',
    citations           jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The retrieved set (chunk ids and scores), for analytics and audits of answers.
    retrieved           jsonb NOT NULL DEFAULT '[]'::jsonb,
    generator           text,
    model               text,
    prompt_tokens       integer NOT NULL DEFAULT 0,
    completion_tokens   integer NOT NULL DEFAULT 0,
    total_tokens        integer NOT NULL DEFAULT 0,
    error_code          text,
    error               text,
    regenerated_from    uuid REFERENCES chat_turns (id) ON DELETE SET NULL,
    first_token_ms      integer,
    latency_ms          integer,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    UNIQUE (session_id, number)
);

CREATE TABLE turn_feedback (
    turn_id    uuid NOT NULL REFERENCES chat_turns (id) ON DELETE CASCADE,
    principal  text NOT NULL,
    rating     text NOT NULL CHECK (rating IN ('up', 'down')),
    comment    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (turn_id, principal)
);
