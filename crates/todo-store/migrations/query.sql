-- Query side: the read model and every event it applied (history, dedupe).
CREATE TABLE IF NOT EXISTS read_todos (
    id            uuid PRIMARY KEY,
    owner         text        NOT NULL,
    title         text        NOT NULL,
    description   text        NOT NULL,
    priority      text        NOT NULL,
    priority_rank smallint    NOT NULL,
    due_date      timestamptz,
    tags          text[]      NOT NULL,
    completed     boolean     NOT NULL,
    completed_at  timestamptz,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS read_todos_owner_created ON read_todos (owner, created_at, id);
CREATE INDEX IF NOT EXISTS read_todos_tags ON read_todos USING gin (tags);

-- The dedupe record: (todo_id, version) and event_id are unique, so a
-- redelivered event inserts nothing and is skipped in the same transaction.
CREATE TABLE IF NOT EXISTS read_history (
    todo_id      uuid        NOT NULL,
    version      bigint      NOT NULL,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    user_id      text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    envelope     json        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (todo_id, version)
);
