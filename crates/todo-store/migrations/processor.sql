-- Event processor: users seen so far and todos with a due date to sweep.
CREATE TABLE IF NOT EXISTS ep_known_users (
    user_id       text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL,
    caused_by     uuid        NOT NULL
);

CREATE TABLE IF NOT EXISTS ep_due_todos (
    todo_id      uuid PRIMARY KEY,
    user_id      text        NOT NULL,
    title        text        NOT NULL,
    due_date     timestamptz,
    active       boolean     NOT NULL,
    version      bigint      NOT NULL,
    notified_at  timestamptz
);
-- Only todos with a due date are swept, so only they are indexed: a todo
-- without one (most of them) writes no entry here. The sweep's range
-- condition on due_date implies the predicate. (Replaces ep_due_todos_due,
-- which indexed every open todo.)
DROP INDEX IF EXISTS ep_due_todos_due;
CREATE INDEX IF NOT EXISTS ep_due_todos_due_dated ON ep_due_todos (due_date)
    WHERE active AND notified_at IS NULL AND due_date IS NOT NULL;
