-- Command side: the event store, the outbox and idempotency records.
CREATE TABLE IF NOT EXISTS events (
    stream_id    uuid        NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1),
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    user_id      text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    -- The exact record bytes sent to Kafka (schema-validated JSON). `json`
    -- keeps them as written; `jsonb` would cost a conversion on every write.
    payload      json        NOT NULL,
    -- Optimistic concurrency: two writers of the same version cannot both commit.
    CONSTRAINT events_stream_version PRIMARY KEY (stream_id, version)
);

-- A pointer to an event not yet acknowledged by the broker; the relay reads
-- the record from `events`, so the payload is written once.
CREATE TABLE IF NOT EXISTS outbox (
    id           bigserial PRIMARY KEY,
    stream_id    uuid        NOT NULL,
    version      bigint      NOT NULL,
    topic        text        NOT NULL,
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
