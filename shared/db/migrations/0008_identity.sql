-- Identity: who signs in, what they are in each workspace, and per-knowledge-base grants.
-- A principal is a verified token's subject (or an API key); workspace_members (0001)
-- holds each principal's role in a workspace. Knowledge bases belong to a workspace; a
-- member sees every knowledge base of it at their role, unless the membership is
-- `limited`: then only the knowledge bases granted to them (kb_grants).

CREATE TABLE principals (
    id            text PRIMARY KEY,
    email         text,
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX principals_email ON principals (lower(email));

ALTER TABLE workspace_members ADD COLUMN limited boolean NOT NULL DEFAULT false;
CREATE INDEX workspace_members_principal ON workspace_members (principal);

-- An invitation by email, turned into a membership on that email's first verified
-- sign-in (or the next one, for a principal who signed in before).
CREATE TABLE workspace_invitations (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    limited      boolean NOT NULL DEFAULT false,
    invited_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, email)
);
CREATE INDEX workspace_invitations_email ON workspace_invitations (lower(email));

CREATE TABLE kb_grants (
    kb_id       uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    principal   text NOT NULL,
    access      text NOT NULL CHECK (access IN ('read', 'write')),
    granted_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kb_id, principal)
);
CREATE INDEX kb_grants_principal ON kb_grants (principal);

CREATE TABLE access_requests (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kb_id       uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    principal   text NOT NULL,
    access      text NOT NULL CHECK (access IN ('read', 'write')),
    reason      text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'denied')),
    decided_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz
);
-- One open request per principal and knowledge base.
CREATE UNIQUE INDEX access_requests_pending ON access_requests (kb_id, principal)
    WHERE status = 'pending';

-- API keys for servers: a public id and the SHA-256 of a high-entropy secret (the
-- secret itself is shown once, at creation, and never stored).
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    secret_sha256 bytea NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id);

-- Single-use, short-lived tickets that authenticate a browser's EventSource (which
-- cannot send an Authorization header) on one stream path. Only the SHA-256 of the
-- ticket is kept; redeeming deletes the row.
CREATE TABLE stream_tickets (
    ticket_sha256 bytea PRIMARY KEY,
    principal     text NOT NULL,
    email         text,
    workspace     text NOT NULL,
    role          text,
    limited       boolean NOT NULL DEFAULT false,
    path          text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);
