//! Statistics for tables that start empty, before autovacuum gives them any.
//!
//! sqlx prepares every statement, and from a statement's sixth run
//! Postgres may settle on a generic plan, kept until the table's statistics
//! change. On a table that was never analyzed (a new deployment, the
//! replay's rebuild tables) the planner knows neither its size nor that a
//! column is selective, so that plan scans the whole table for
//! `id = ANY($1)`, and keeps doing so as the table grows, until
//! autovacuum's first ANALYZE (its first pass over a new database comes a
//! minute or more after start). Measured: the projector's row lookup took
//! 17 ms per batch at 55,000 rows instead of 0.12 ms (docs/PERFORMANCE.md,
//! "Plans frozen on young tables").
//!
//! The owner of such tables counts the rows it applies and analyzes them
//! each time that count doubles (1,000, 2,000, 4,000 … rows), until they
//! hold [`SETTLED_ROWS`]: each ANALYZE invalidates every connection's cached
//! plans, and a plan made on a table analyzed at a few thousand rows uses
//! its primary key; from then on autovacuum keeps the statistics current.
//! Analyzing once is not enough: at 1,000 rows a scan is still the cheaper
//! generic plan, and it would stay. Planning every run instead
//! (`plan_cache_mode = force_custom_plan`) was tried and measured: without
//! statistics it too scans a few thousand rows, and it made a 276,000-event
//! replay (batches of 1,000) 65% slower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::PgPool;

use crate::StoreError;

/// Rows applied before the first ANALYZE; then at each doubling.
pub const FIRST_AT: u64 = 1000;

/// Tables that hold this many rows (by their statistics) are left to
/// autovacuum.
pub const SETTLED_ROWS: f32 = 100_000.0;

/// Tables of one owner that may still be young. Clones share the count.
#[derive(Debug, Clone)]
pub struct YoungTables(Arc<Young>);

#[derive(Debug)]
struct Young {
    /// Table names: constants of the owning module, never input.
    tables: &'static [&'static str],
    applied: AtomicU64,
    next_at: AtomicU64,
    settled: AtomicBool,
}

impl YoungTables {
    pub fn new(tables: &'static [&'static str]) -> Self {
        Self(Arc::new(Young {
            tables,
            applied: AtomicU64::new(0),
            next_at: AtomicU64::new(FIRST_AT),
            settled: AtomicBool::new(false),
        }))
    }

    /// Count `rows` applied; true when the count has doubled since the
    /// last time (for one caller only), that is, time to
    /// [`analyze_young`](Self::analyze_young). Once the tables are settled,
    /// only a flag is read.
    pub fn due(&self, rows: u64) -> bool {
        let y = &self.0;
        if y.settled.load(Ordering::Relaxed) {
            return false;
        }
        let total = y.applied.fetch_add(rows, Ordering::Relaxed) + rows;
        let next_at = y.next_at.load(Ordering::Relaxed);
        total >= next_at
            && y.next_at
                .compare_exchange(next_at, total * 2, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Analyze those of the tables that hold fewer than [`SETTLED_ROWS`]
    /// rows (or were never analyzed); returns them. When none is left, the
    /// tables are settled and [`due`](Self::due) stays false.
    pub async fn analyze_young(&self, pool: &PgPool) -> Result<Vec<String>, StoreError> {
        let y = &self.0;
        // reltuples is -1 until a table's first VACUUM or ANALYZE.
        let young: Vec<String> = sqlx::query_scalar(
            "SELECT t FROM unnest($1::text[]) AS t
             WHERE (SELECT reltuples FROM pg_class WHERE oid = to_regclass(t)) < $2",
        )
        .bind(y.tables)
        .bind(SETTLED_ROWS)
        .fetch_all(pool)
        .await?;
        for table in &young {
            let Some(name) = y.tables.iter().find(|t| **t == table.as_str()) else {
                continue;
            };
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {name}")))
                .execute(pool)
                .await?;
        }
        if young.is_empty() {
            y.settled.store(true, Ordering::Relaxed);
        }
        Ok(young)
    }

    /// What the owners call after each batch: count `rows` and, when due,
    /// analyze in the background (an ANALYZE takes tens of milliseconds on
    /// a large table; the batch that made it due does not wait for it, and
    /// it blocks no writer). `owner` names the tables in the log.
    pub fn applied(&self, pool: &PgPool, rows: u64, owner: &'static str) {
        if !self.due(rows) {
            return;
        }
        let (young, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            match young.analyze_young(&pool).await {
                Ok(analyzed) if !analyzed.is_empty() => {
                    tracing::info!(owner, ?analyzed, "analyzed tables still young");
                }
                Ok(_) => {}
                // Only plans depend on it; the next doubling tries again.
                Err(e) => tracing::warn!(owner, error = %e, "could not analyze young tables"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_the_first_thousand_rows_then_at_each_doubling() {
        let y = YoungTables::new(&["t"]);
        let dues: Vec<u64> = (1..=80).map(|i| i * 100).filter(|_| y.due(100)).collect();
        assert_eq!(dues, vec![1000, 2000, 4000, 8000]);
        assert!(!y.due(7_999), "next at 16,000");
        assert!(y.due(1));
        // Settled tables never are.
        y.0.settled.store(true, Ordering::Relaxed);
        assert!(!y.due(1_000_000));
    }
}
