//! PostgreSQL access for every service. Each service owns its tables
//! (`migrations/<component>.sql`); no service reads another's tables.
//!
//! Architecture invariant: an event, its outbox row and the idempotency record
//! are written by one statement, so they commit or fail together.

pub mod audit;
pub mod command;
pub mod error;
pub mod group;
pub mod migrate;
pub mod pool_metrics;
pub mod processor;
pub mod read;

use std::time::Duration;

pub use error::StoreError;
pub use pool_metrics::PoolMetrics;
pub use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// How a pool's connections plan the statements they prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// Postgres' default: from a statement's sixth run on, a generic plan,
    /// kept until the table's statistics change. Right for statements whose
    /// plan does not depend on table size (the command side's appends):
    /// planning the write path's append on every run cost 15–20% of its
    /// throughput (docs/PERFORMANCE.md, "Plans frozen on young tables").
    Cached,
    /// Every run planned with its parameters (`plan_cache_mode =
    /// force_custom_plan`, sent once per new connection). A generic plan made
    /// while a table was young (a new deployment, the replay's rebuild
    /// tables, before autovacuum's first ANALYZE) scans the whole table for
    /// `id = ANY($1)` and keeps doing so as the table grows: the projector's
    /// row lookup took 17 ms per batch at up to 55,000 rows instead of
    /// 0.12 ms. Planned per run, it scans only while the table is small
    /// enough for a scan to be the cheaper plan (a few thousand rows).
    EachRun,
}

/// Connect a pool that fails fast when Postgres is down, so callers can answer
/// 503 instead of hanging.
pub async fn connect(
    url: &str,
    max_connections: u32,
    planning: Planning,
) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
    let pool = pool_options(max_connections, planning)
        .min_connections(1)
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// What every pool of ours shares.
fn pool_options(max_connections: u32, planning: Planning) -> PgPoolOptions {
    let options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        // The default pings every connection on checkout: one extra round
        // trip per query. A broken connection fails its query instead, which
        // callers already treat as "unavailable, retry".
        .test_before_acquire(false);
    match planning {
        Planning::Cached => options,
        Planning::EachRun => options.after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_custom_plan")
                    .await
                    .map(|_| ())
            })
        }),
    }
}

/// A service's start-up: connect (failing fast, see [`connect`]) and run the
/// migrations of each component it owns, in order. The pool plans each run
/// if any of the components' tables asks for it
/// ([`migrate::Component::planning`]).
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    components: &[migrate::Component],
) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let planning = if components.iter().any(|c| c.planning() == Planning::EachRun) {
        Planning::EachRun
    } else {
        Planning::Cached
    };
    let pool = connect(url, max_connections, planning)
        .await
        .context("connecting to Postgres (database_url)")?;
    for c in components {
        migrate::run(&pool, *c).await.context("migrating")?;
    }
    Ok(pool)
}

/// A lazy pool: the service starts even when Postgres is not up yet.
pub fn connect_lazy(
    url: &str,
    max_connections: u32,
    planning: Planning,
) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
    Ok(pool_options(max_connections, planning).connect_lazy_with(opts))
}

/// Readiness check: Postgres answers, or why not.
pub async fn ready(pool: PgPool) -> Result<(), String> {
    ping(&pool).await.map_err(|e| e.to_string())
}

/// `SELECT 1` for readiness checks.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
