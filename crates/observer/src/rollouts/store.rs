//! The rollout tables, `canary_rollouts` and the append-only
//! `canary_decisions`: their migration (`migrations/rollouts.sql`) and every
//! statement that touches them.

use anyhow::Context as _;
use canary::{CanarySpec, State};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row as _};

use super::{DecisionRecord, Phase, Rollout};
use observer_api::canaries::BlueGreenStatus;

/// The tables' schema. Idempotent (`CREATE … IF NOT EXISTS`), run at every
/// start like every other component's script: a database created when this
/// script lived in `todo-store` (as its `observer.sql`) is already up to date.
const MIGRATION: &str = include_str!("../../migrations/rollouts.sql");

pub(super) struct Store {
    pool: PgPool,
}

impl Store {
    /// Migrate the canary tables in `pool`.
    pub(super) async fn migrate(pool: PgPool) -> anyhow::Result<Self> {
        todo_store::migrate::run_script(&pool, MIGRATION)
            .await
            .context("migrating the canary tables")?;
        Ok(Self { pool })
    }

    /// A new rollout of the spec's canary version; returns its id and start.
    pub(super) async fn insert_rollout(
        &self,
        spec: &CanarySpec,
        phase: Phase,
        weight: u32,
        state: &State,
    ) -> anyhow::Result<(i64, DateTime<Utc>)> {
        let row = sqlx::query(
            "INSERT INTO canary_rollouts (canary, canary_version, stable_version, phase, weight, analysis, strategy)
             VALUES ($1, $2, $3, $7, $4, $5, $6)
             RETURNING id, started_at",
        )
        .bind(&spec.name)
        .bind(&spec.canary_version)
        .bind(&spec.stable_version)
        .bind(weight as i32)
        .bind(sqlx::types::Json(state))
        .bind(spec.strategy.as_str())
        .bind(phase.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("id")?, row.try_get("started_at")?))
    }

    /// Newest first; `action` filters (e.g. `analysis`).
    pub(super) async fn decisions(
        &self,
        canary: &str,
        limit: i64,
        action: Option<&str>,
    ) -> anyhow::Result<Vec<DecisionRecord>> {
        let rows = sqlx::query(
            "SELECT id, rollout_id, canary, at, actor, action, verdict, reason, step_percent,
                    weight_after, inputs, observed, statistic, trace_id
             FROM canary_decisions
             WHERE canary = $1 AND ($2::text IS NULL OR action = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(canary)
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    pub(super) async fn load_rollout(
        &self,
        canary: &str,
        version: &str,
    ) -> anyhow::Result<Option<Rollout>> {
        let row = sqlx::query(
            "SELECT id, canary, canary_version, stable_version, phase, weight, analysis,
                    analysed_secs, started_at, updated_at, finished_at, strategy, blue_green
             FROM canary_rollouts WHERE canary = $1 AND canary_version = $2",
        )
        .bind(canary)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    pub(super) async fn unfinished_rollouts(&self, canary: &str) -> anyhow::Result<Vec<Rollout>> {
        let rows = sqlx::query(
            "SELECT id, canary, canary_version, stable_version, phase, weight, analysis,
                    analysed_secs, started_at, updated_at, finished_at, strategy, blue_green
             FROM canary_rollouts WHERE canary = $1 AND phase IN ('progressing', 'paused', 'blocked')
             ORDER BY id",
        )
        .bind(canary)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// Append the decision and save the rollout, in one transaction.
    /// `r` gets the stored `updated_at` and `finished_at`.
    pub(super) async fn persist(
        &self,
        r: &mut Rollout,
        rec: NewDecision,
    ) -> anyhow::Result<DecisionRecord> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE canary_rollouts
             SET phase = $2, weight = $3, analysis = $4, analysed_secs = $5, updated_at = now(),
                 finished_at = CASE WHEN $6 THEN coalesce(finished_at, now()) ELSE NULL END,
                 blue_green = $7
             WHERE id = $1
             RETURNING updated_at, finished_at",
        )
        .bind(r.id)
        .bind(r.phase.as_str())
        .bind(r.weight as i32)
        .bind(sqlx::types::Json(&r.analysis))
        .bind(r.analysed_secs as i64)
        .bind(r.phase.finished())
        .bind(r.blue_green.as_ref().map(sqlx::types::Json))
        .fetch_one(&mut *tx)
        .await?;
        r.updated_at = row.try_get("updated_at")?;
        r.finished_at = row.try_get("finished_at")?;
        let row = sqlx::query(
            "INSERT INTO canary_decisions
               (rollout_id, canary, actor, action, verdict, reason, step_percent, weight_after,
                inputs, observed, statistic, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING id, rollout_id, canary, at, actor, action, verdict, reason, step_percent,
                       weight_after, inputs, observed, statistic, trace_id",
        )
        .bind(r.id)
        .bind(&r.canary)
        .bind(&rec.actor)
        .bind(rec.action)
        .bind(&rec.verdict)
        .bind(&rec.reason)
        .bind(rec.step_percent as i32)
        .bind(r.weight as i32)
        .bind(sqlx::types::Json(&rec.inputs))
        .bind(sqlx::types::Json(&rec.observed))
        .bind(sqlx::types::Json(&rec.statistic))
        .bind(&rec.trace_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        decision_from_row(&row)
    }
}

/// A decision to append (the rollout it belongs to gives id, canary and weight).
pub(super) struct NewDecision {
    pub(super) actor: String,
    pub(super) action: &'static str,
    pub(super) verdict: String,
    pub(super) reason: String,
    pub(super) step_percent: u32,
    pub(super) inputs: Value,
    pub(super) observed: Value,
    pub(super) statistic: Value,
    pub(super) trace_id: Option<String>,
}

fn rollout_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<Rollout> {
    let analysis: sqlx::types::Json<State> = row.try_get("analysis")?;
    Ok(Rollout {
        id: row.try_get("id")?,
        canary: row.try_get("canary")?,
        canary_version: row.try_get("canary_version")?,
        stable_version: row.try_get("stable_version")?,
        phase: Phase::parse(row.try_get::<String, _>("phase")?.as_str()),
        weight: row.try_get::<i32, _>("weight")?.clamp(0, 100) as u32,
        // Re-assert the recorded weight once after a restart.
        weight_applied: false,
        analysis: analysis.0,
        analysed_secs: row.try_get::<i64, _>("analysed_secs")?.max(0) as u64,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        strategy: match row.try_get::<String, _>("strategy")?.as_str() {
            "blue_green" => canary::Strategy::BlueGreen,
            _ => canary::Strategy::Canary,
        },
        blue_green: row
            .try_get::<Option<sqlx::types::Json<BlueGreenStatus>>, _>("blue_green")?
            .map(|j| j.0),
    })
}

fn decision_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<DecisionRecord> {
    let json =
        |c: &str| -> anyhow::Result<Value> { Ok(row.try_get::<sqlx::types::Json<Value>, _>(c)?.0) };
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        rollout_id: row.try_get("rollout_id")?,
        canary: row.try_get("canary")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        verdict: row.try_get("verdict")?,
        reason: row.try_get("reason")?,
        step_percent: row.try_get("step_percent")?,
        weight_after: row.try_get("weight_after")?,
        inputs: json("inputs")?,
        observed: json("observed")?,
        statistic: json("statistic")?,
        trace_id: row.try_get("trace_id")?,
    })
}
