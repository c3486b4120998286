-- Observer: canary rollouts and their append-only decision log.
CREATE TABLE IF NOT EXISTS canary_rollouts (
    id             bigserial   PRIMARY KEY,
    canary         text        NOT NULL,
    canary_version text        NOT NULL,
    stable_version text        NOT NULL,
    -- progressing | paused | succeeded | rolled_back | aborted | superseded | blocked
    phase          text        NOT NULL,
    weight         integer     NOT NULL,
    -- canary::State: step, the running sequential tests, counts in the step
    analysis       json        NOT NULL,
    analysed_secs  bigint      NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (canary, canary_version)
);

-- Blue-green rollouts (docs/canary.md): the strategy, and the switch and
-- scale-downs so far (observer_api::canaries::BlueGreenStatus).
ALTER TABLE canary_rollouts ADD COLUMN IF NOT EXISTS strategy text NOT NULL DEFAULT 'canary';
ALTER TABLE canary_rollouts ADD COLUMN IF NOT EXISTS blue_green json;

CREATE TABLE IF NOT EXISTS canary_decisions (
    id           bigserial   PRIMARY KEY,
    rollout_id   bigint      NOT NULL REFERENCES canary_rollouts (id),
    canary       text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- 'observer' for the analysis, else the operator's token subject
    actor        text        NOT NULL,
    -- start | analysis | promote | pause | resume | abort | supersede | scale_down | gate
    action       text        NOT NULL,
    verdict      text        NOT NULL,
    reason       text        NOT NULL,
    step_percent integer     NOT NULL,
    weight_after integer     NOT NULL,
    -- queries and thresholds the analysis used
    inputs       json        NOT NULL,
    -- counts per side (and the consumer's), as queried
    observed     json        NOT NULL,
    -- log-likelihood ratios, boundary, burn rate, DLQ ratio
    statistic    json        NOT NULL,
    trace_id     text
);
CREATE INDEX IF NOT EXISTS canary_decisions_by_canary ON canary_decisions (canary, id);

-- The decision log is append-only: updates and deletes are refused.
CREATE OR REPLACE FUNCTION canary_decisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'canary_decisions is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS canary_decisions_append_only ON canary_decisions;
CREATE TRIGGER canary_decisions_append_only
    BEFORE UPDATE OR DELETE ON canary_decisions
    FOR EACH ROW EXECUTE FUNCTION canary_decisions_append_only();
