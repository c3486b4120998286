-- Command side: the event store, the outbox and idempotency records.
CREATE TABLE IF NOT EXISTS events (
    global_seq   bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    stream_id    uuid        NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1),
    event_type   text        NOT NULL,
    user_id      text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      jsonb       NOT NULL,
    -- Optimistic concurrency: two writers of the same version cannot both commit.
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

CREATE TABLE IF NOT EXISTS outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    record_key   text        NOT NULL,
    payload      bytea       NOT NULL,
    event_type   text        NOT NULL,
    traceparent  text,
    tracestate   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id       text        NOT NULL,
    idem_key      text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status        smallint    NOT NULL,
    response_body bytea       NOT NULL,
    etag          text,
    location      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idem_key)
);
