-- The audit log (shared/store/audit.py): one row per mutation, question or retrieval,
-- written in the transaction of the change it records (shared/api/audit.py).
-- Append-only: no foreign keys (a row outlives what it names, the workspace included;
-- it holds ids and request metadata, never document text), and a trigger refuses
-- UPDATE, DELETE and TRUNCATE for every role, the owner and superusers included.
-- Only a superuser's session_replication_role = replica (the test wipe) skips it.
CREATE TABLE audit_log (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    workspace_id     uuid,
    workspace        text NOT NULL,
    actor            text NOT NULL,
    credential_kind  text NOT NULL,
    credential_id    text NOT NULL,
    action           text NOT NULL,
    target_kind      text NOT NULL,
    target_ids       text[] NOT NULL DEFAULT '{}',
    outcome          text NOT NULL CHECK (outcome IN ('succeeded', 'denied', 'failed')),
    status           integer,
    request_id       text NOT NULL,
    trace_id         text NOT NULL,
    client_address   text NOT NULL,
    user_agent       text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id DESC);
CREATE INDEX audit_log_targets ON audit_log USING gin (target_ids);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The functions' role may read and append, nothing else (0003 granted every table's
-- UPDATE and DELETE by default).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ragline_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM ragline_app;
        GRANT SELECT, INSERT ON audit_log TO ragline_app;
    END IF;
END
$$;
