-- Sources (shared/pipeline/sync.py): a knowledge base's standing connection to content
-- elsewhere (a bucket prefix, a web site, later a drive), synced now or on a schedule.
-- A sync run visits the source's items (one Cloud Tasks task each) and hands what
-- changed to the same pipeline as uploads; what it no longer finds is deleted.
CREATE TABLE sources (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kb_id             uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    type              text NOT NULL,
    -- The type's validated configuration (shared/sources/registry.py).
    config            jsonb NOT NULL,
    -- Minutes between scheduled runs; NULL: runs only when asked.
    schedule_minutes  integer CHECK (schedule_minutes IS NULL OR schedule_minutes > 0),
    paused            boolean NOT NULL DEFAULT false,
    -- The run in progress (at most one per source); NULL when idle.
    current_run_id    uuid,
    last_run_id       uuid,
    next_run_at       timestamptz,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sources_kb ON sources (kb_id, created_at);
CREATE INDEX sources_due ON sources (next_run_at) WHERE NOT paused AND next_run_at IS NOT NULL;

CREATE TABLE source_runs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_id         uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    -- 'created', 'manual' or 'schedule'; a scheduled run names its due time, once.
    trigger           text NOT NULL,
    due_at            timestamptz,
    -- running -> finishing (exactly once, when no item is pending) -> succeeded,
    -- partial (some items failed) or failed (the run could not start or a root failed).
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'finishing', 'succeeded', 'partial', 'failed')),
    -- Whether the start task listed the roots (until then the run is not done).
    roots_listed      boolean NOT NULL DEFAULT false,
    -- A child was left out because the run reached its item cap: unseen items stay.
    truncated         boolean NOT NULL DEFAULT false,
    item_count        integer NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    progress_at       timestamptz NOT NULL DEFAULT now(),
    sweeps            integer NOT NULL DEFAULT 0,
    -- Counts, written when the run ends (while it runs they are read from its items).
    counts            jsonb,
    last_error        text,
    UNIQUE (source_id, due_at)
);
CREATE INDEX source_runs_source ON source_runs (source_id, started_at DESC);
CREATE INDEX source_runs_open ON source_runs (progress_at) WHERE status IN ('running', 'finishing');

-- One row per item a source has shown (a URL, an object), keyed by the item's key.
-- A run claims an item by setting last_run_id (a conditional upsert): one task per key
-- per run. The item's revision is what the next run asks "changed since?" with.
CREATE TABLE source_items (
    source_id         uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    key               text NOT NULL,
    depth             integer NOT NULL DEFAULT 0,
    hints             jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_root           boolean NOT NULL DEFAULT false,
    last_run_id       uuid,
    -- 'pending' (its task has not finished in last_run_id) or 'done'.
    state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    -- What the last visit came to: added, updated, unchanged, deleted, skipped, failed.
    outcome           text,
    revision          jsonb,
    origin_url        text,
    document_id       uuid REFERENCES documents (id) ON DELETE SET NULL,
    version_id        uuid,
    error             text,
    error_code        text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, key)
);
CREATE INDEX source_items_run ON source_items (last_run_id, state);
CREATE INDEX source_items_document ON source_items (document_id) WHERE document_id IS NOT NULL;

-- A document from a source records where it came from; the viewer shows it.
ALTER TABLE documents
    ADD COLUMN source_id uuid REFERENCES sources (id) ON DELETE SET NULL,
    ADD COLUMN origin_url text,
    ADD COLUMN origin_revision jsonb;
CREATE INDEX documents_source ON documents (source_id) WHERE source_id IS NOT NULL;
