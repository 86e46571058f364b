-- Lifecycle events are written to an outbox in the same transaction as the change they
-- announce, and published afterwards by a relay (shared/pipeline/outbox.py): a publish
-- that fails, or a process that stops, after the commit is repaired by the next relay
-- run instead of losing the event. No foreign keys: an event outlives what it is about
-- (a deleted document's event is still published).
CREATE TABLE outbox (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- consumers dedupe on it
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,   -- the order written
    type             text NOT NULL,
    workspace_id     uuid,
    kb_id            uuid NOT NULL,
    document_id      uuid NOT NULL,
    version_id       uuid,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Webhooks of a knowledge base: where to POST which lifecycle events. The secret signs
-- each delivery (HMAC-SHA256), so the server must be able to read it: it is stored as
-- is, shown once at creation and never returned or logged afterwards.
CREATE TABLE webhooks (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kb_id                 uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    url                   text NOT NULL,
    events                text[] NOT NULL,
    secret                text NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_kb ON webhooks (kb_id);

-- One row per delivery attempt of an event to a webhook.
CREATE TABLE webhook_deliveries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id     uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id       uuid NOT NULL,
    event_type     text NOT NULL,
    attempt        integer NOT NULL,
    status         text NOT NULL CHECK (status IN ('delivered', 'failed', 'refused', 'skipped')),
    response_code  integer,
    duration_ms    integer,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);
-- An event is delivered to a webhook at most once as far as the log can tell.
CREATE UNIQUE INDEX webhook_deliveries_delivered ON webhook_deliveries (webhook_id, event_id)
    WHERE status = 'delivered';
