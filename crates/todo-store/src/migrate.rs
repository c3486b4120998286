//! Idempotent migrations, one script per component, serialized across
//! processes by an advisory lock so services may start together.

use sqlx::PgPool;

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Command,
    Query,
    Processor,
    /// The audit trail every writing service appends to.
    Audit,
}

impl Component {
    fn script(self) -> &'static str {
        match self {
            Component::Command => include_str!("../migrations/command.sql"),
            Component::Query => include_str!("../migrations/query.sql"),
            Component::Processor => include_str!("../migrations/processor.sql"),
            Component::Audit => include_str!("../migrations/audit.sql"),
        }
    }
}

const MIGRATION_LOCK: i64 = 0x7464_6f5f_6d69_6772; // "tdo_migr"

pub async fn run(pool: &PgPool, component: Component) -> Result<(), StoreError> {
    run_script(pool, component.script()).await
}

/// Run an idempotent migration script under the same lock, for a component
/// that owns its tables and their script outside this crate (the observer's
/// rollout tables).
pub async fn run_script(pool: &PgPool, script: &'static str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(script).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
