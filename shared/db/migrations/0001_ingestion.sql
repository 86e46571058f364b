-- Tenancy, documents, versions, chunks and their progress events.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    principal    text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, principal)
);

CREATE TABLE knowledge_bases (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    description     text NOT NULL DEFAULT '',
    embedding_model text NOT NULL,
    embedding_dim   integer NOT NULL CHECK (embedding_dim BETWEEN 1 AND 16000),
    chunk_tokens    integer NOT NULL CHECK (chunk_tokens BETWEEN 16 AND 8192),
    chunk_overlap   integer NOT NULL CHECK (chunk_overlap >= 0 AND chunk_overlap < chunk_tokens),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

CREATE TABLE documents (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kb_id             uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    -- Where the document comes from inside its knowledge base: the object path under
    -- the knowledge base's prefix, or the uploaded file name. Re-ingesting the same
    -- source key makes a new version of the same document.
    source_key        text NOT NULL,
    filename          text NOT NULL,
    title             text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    active_version_id uuid,
    latest_version_id uuid,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kb_id, source_key)
);

CREATE TABLE document_versions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id       uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kb_id             uuid NOT NULL,
    number            integer NOT NULL CHECK (number >= 1),
    checksum          text,
    size_bytes        bigint,
    declared_type     text,
    content_type      text,
    object_bucket     text NOT NULL,
    object_name       text NOT NULL,
    object_generation bigint,
    status            text NOT NULL CHECK (status IN (
                          'awaiting_upload', 'received', 'parsing', 'chunking',
                          'embedding', 'indexing', 'ready', 'failed', 'superseded')),
    error_code        text,
    error             text,
    last_error        text,
    page_count        integer,
    chunk_count       integer,
    embedding_model   text,
    received_at       timestamptz,
    parsing_at        timestamptz,
    chunking_at       timestamptz,
    embedding_at      timestamptz,
    indexing_at       timestamptz,
    ready_at          timestamptz,
    failed_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, number)
);
-- A redelivered finalize event names the same object generation: one version only.
CREATE UNIQUE INDEX document_versions_object_generation
    ON document_versions (object_bucket, object_name, object_generation)
    WHERE object_generation IS NOT NULL;
CREATE INDEX document_versions_status ON document_versions (status);

ALTER TABLE documents
    ADD CONSTRAINT documents_active_version_fk FOREIGN KEY (active_version_id)
        REFERENCES document_versions (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT documents_latest_version_fk FOREIGN KEY (latest_version_id)
        REFERENCES document_versions (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version_id    uuid NOT NULL REFERENCES document_versions (id) ON DELETE CASCADE,
    document_id   uuid NOT NULL,
    kb_id         uuid NOT NULL,
    ordinal       integer NOT NULL CHECK (ordinal >= 0),
    text          text NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    -- Untyped so knowledge bases may use models of different dimensions; each
    -- dimension gets its own partial HNSW index (see shared/db/vector_index.py).
    embedding     vector,
    embedding_dim integer,
    page_start    integer,
    page_end      integer,
    char_start    integer NOT NULL,
    char_end      integer NOT NULL,
    heading_path  text[] NOT NULL DEFAULT '{}',
    token_count   integer NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    embedded_at   timestamptz,
    UNIQUE (version_id, ordinal)
);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_kb ON chunks (kb_id);
CREATE INDEX chunks_unembedded ON chunks (version_id) WHERE embedding IS NULL;

-- Progress of each document, appended in the same transaction as each transition, so
-- a server-sent event stream can resume from Last-Event-ID.
CREATE TABLE document_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id uuid NOT NULL,
    version_id  uuid,
    kb_id       uuid NOT NULL,
    status      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_events_document ON document_events (document_id, id);

-- HNSW (cosine) for the default 384-dimension models (MiniLM, hashing-384); other
-- dimensions get theirs when the first knowledge base using them is created.
CREATE INDEX chunks_embedding_hnsw_384 ON chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 384;
