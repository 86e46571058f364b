-- Quotas and rate limits (shared/api/quotas.py). A workspace's admins set its limits;
-- a column left NULL takes the settings' default, 0 means unlimited.
CREATE TABLE workspace_limits (
    workspace_id                 uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    requests_per_minute          integer CHECK (requests_per_minute >= 0),
    api_key_requests_per_minute  integer CHECK (api_key_requests_per_minute >= 0),
    questions_per_day            integer CHECK (questions_per_day >= 0),
    tokens_per_question          integer CHECK (tokens_per_question >= 0),
    monthly_tokens               bigint CHECK (monthly_tokens >= 0),
    updated_by                   text NOT NULL,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

-- One counter per limit, subject and fixed window (minute, UTC day, UTC month). A take
-- is one INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= limit: the row lock
-- makes concurrent takes exact across instances, with no read before the write.
-- subject: a principal id, an API key id, '<workspace id>/<principal>' or a workspace
-- id, as the limit's scope says. No foreign key: a counter outlives nothing it
-- limits (a deleted workspace's id is never reused), and the hot path stays one row.
CREATE TABLE quota_counters (
    limit_name    text NOT NULL,
    subject       text NOT NULL,
    window_start  timestamptz NOT NULL,
    used          bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (limit_name, subject, window_start)
);
CREATE INDEX quota_counters_window ON quota_counters (window_start);
