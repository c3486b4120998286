//! `todoctl bench --statements`: `pg_stat_statements` loaded into the
//! bench's PostgreSQL, reset before each measured phase and read after it,
//! so each phase reports where the database's time went, per 1,000 events.

use serde::Serialize;
use sqlx::PgPool;

/// Server settings that load the extension (it needs a restart-time preload).
pub const SETTINGS: &[(&str, &str)] = &[("shared_preload_libraries", "pg_stat_statements")];

/// Statements shown per phase.
const TOP: i64 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// Execution time per 1,000 events written in the phase.
    pub ms_per_1k_events: f64,
    pub total_ms: f64,
    pub calls: i64,
    pub rows: i64,
    /// Normalized text (`$1` for constants), whitespace collapsed.
    pub query: String,
}

/// Off (`None`), or the pool the statistics are read through.
pub struct Profiler(Option<PgPool>);

impl Profiler {
    pub async fn new(on: bool, pool: &PgPool) -> anyhow::Result<Self> {
        if !on {
            return Ok(Self(None));
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await?;
        Ok(Self(Some(pool.clone())))
    }

    /// Forget everything before the phase that starts now.
    pub async fn reset(&self) -> anyhow::Result<()> {
        if let Some(pool) = &self.0 {
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The phase's costliest statements in this database (`None` when off).
    pub async fn top(&self, events: u64) -> anyhow::Result<Option<Vec<Statement>>> {
        let Some(pool) = &self.0 else { return Ok(None) };
        let rows: Vec<(f64, i64, i64, String)> = sqlx::query_as(
            "SELECT total_exec_time, calls, rows, regexp_replace(query, '\\s+', ' ', 'g')
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '%pg_stat_statements%'
             ORDER BY total_exec_time DESC LIMIT $1",
        )
        .bind(TOP)
        .fetch_all(pool)
        .await?;
        let per_1k = |ms: f64| {
            if events > 0 {
                ms * 1000.0 / events as f64
            } else {
                0.0
            }
        };
        Ok(Some(
            rows.into_iter()
                .map(|(total_ms, calls, rows, query)| Statement {
                    ms_per_1k_events: per_1k(total_ms),
                    total_ms,
                    calls,
                    rows,
                    query,
                })
                .collect(),
        ))
    }
}

/// A phase's statements as a markdown table (the bench's table output).
pub fn print(phase: &str, statements: &[Statement]) {
    println!();
    println!("Statements, {phase} (pg_stat_statements execution time):");
    println!();
    println!("| ms per 1,000 events | calls | rows | statement |");
    println!("|---|---|---|---|");
    for s in statements {
        let q: String = s.query.chars().take(110).collect();
        let more = if s.query.chars().count() > 110 {
            "…"
        } else {
            ""
        };
        println!(
            "| {:.1} | {} | {} | `{}{more}` |",
            s.ms_per_1k_events,
            s.calls,
            s.rows,
            q.replace('|', "\\|").replace('`', "'")
        );
    }
}
