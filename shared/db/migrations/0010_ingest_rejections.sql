-- Objects the ingest function refused to map to a knowledge base: a path with too few
-- segments, a workspace that does not exist, an invalid knowledge-base name, incomplete
-- placement metadata. Nothing of them was ingested; operators read why here.
-- One row per object generation: a redelivered event records nothing new.
CREATE TABLE ingest_rejections (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket          text NOT NULL,
    object_name     text NOT NULL,
    generation      bigint,
    reason          text NOT NULL,
    message         text NOT NULL,
    -- What the object named (path or metadata), as given, when it named anything.
    workspace       text,
    knowledge_base  text,
    -- The named workspace when it existed at the time: its admins may read the row.
    -- A rejection naming no existing workspace belongs to no workspace (operators only).
    workspace_id    uuid REFERENCES workspaces (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_rejections_object UNIQUE NULLS NOT DISTINCT (bucket, object_name, generation)
);
CREATE INDEX ingest_rejections_recent ON ingest_rejections (created_at DESC);
CREATE INDEX ingest_rejections_workspace ON ingest_rejections (workspace_id, created_at DESC)
    WHERE workspace_id IS NOT NULL;
