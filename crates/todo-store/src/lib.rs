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
pub mod young;

use std::time::Duration;

pub use error::StoreError;
pub use pool_metrics::PoolMetrics;
pub use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Connect a pool that fails fast when Postgres is down, so callers can answer
/// 503 instead of hanging.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
    let pool = pool_options(max_connections)
        .min_connections(1)
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// What every pool of ours shares.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        // The default pings every connection on checkout: one extra round
        // trip per query. A broken connection fails its query instead, which
        // callers already treat as "unavailable, retry".
        .test_before_acquire(false)
}

/// A service's start-up: connect (failing fast, see [`connect`]) and run the
/// migrations of each component it owns, in order.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    components: &[migrate::Component],
) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let pool = connect(url, max_connections)
        .await
        .context("connecting to Postgres (database_url)")?;
    for c in components {
        migrate::run(&pool, *c).await.context("migrating")?;
    }
    Ok(pool)
}

/// A lazy pool: the service starts even when Postgres is not up yet.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
    Ok(pool_options(max_connections).connect_lazy_with(opts))
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
