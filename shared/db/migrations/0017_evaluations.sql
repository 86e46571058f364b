-- Evaluation runs of a knowledge base (shared/evaluation): a question set answered
-- through the product's own retrieval and answering, scored against expected source
-- documents and reference answers. Runs are kept so two can be compared.
CREATE TABLE evaluation_runs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kb_id           uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    created_by      text NOT NULL,
    name            text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'incomplete', 'failed')),
    -- How the run answered (top_k, generator, model, the knowledge base's settings).
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    question_count  integer NOT NULL,
    -- The overall metrics, once the run has ended.
    summary         jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX evaluation_runs_kb ON evaluation_runs (kb_id, created_at DESC);

-- One row per question of a run, in the order of the question set.
CREATE TABLE evaluation_results (
    run_id            uuid NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    ordinal           integer NOT NULL,
    question          text NOT NULL,
    expected_sources  jsonb NOT NULL DEFAULT '[]'::jsonb,
    reference_answer  text,
    tags              jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- 'answered', 'failed' (its error kept) or 'skipped' (the run ran out of time).
    status            text NOT NULL,
    -- The chat turn that answered it (no foreign key: history may be deleted first).
    turn_id           uuid,
    answer            text,
    cited             jsonb NOT NULL DEFAULT '[]'::jsonb,
    retrieved         jsonb NOT NULL DEFAULT '[]'::jsonb,
    metrics           jsonb NOT NULL DEFAULT '{}'::jsonb,
    error             text,
    PRIMARY KEY (run_id, ordinal)
);
