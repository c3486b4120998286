-- Audit trail of mutating requests and operator actions, shared by every
-- service that writes one. Append-only: a trigger refuses UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL,
    service  text        NOT NULL,
    actor    text        NOT NULL,
    roles    text        NOT NULL,
    action   text        NOT NULL,
    target   text        NOT NULL,
    outcome  integer     NOT NULL,
    trace_id text,
    client   text
);
-- Rows arrive in time order: a BRIN index serves time ranges for almost no
-- insert cost; per-actor pages walk (actor, id).
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log USING brin (at);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, id);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
