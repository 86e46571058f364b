-- Stage leases: the attempt working on a version's stage holds it until lease_expires_at
-- (renewed by its heartbeat); a redelivered message or a sweeper re-drive takes the stage
-- over only once the lease has expired. The sweeper's re-drive budget is counted per
-- stage: lost_attempts (attempts that started and vanished with their lease) and
-- idle_redrives (re-drives after which no attempt started), both reset by progress.
ALTER TABLE document_versions
    ADD COLUMN lease_holder text,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN lost_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN idle_redrives integer NOT NULL DEFAULT 0;
