//! Event processor tables: users seen so far and todos to sweep for due dates.

use chrono::{DateTime, Utc};
use contracts::{TodoEvent, TodoEventData};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// Record a user; `true` the first time the user is seen.
pub async fn remember_user(pool: &PgPool, user_id: &str, caused_by: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO ep_known_users (user_id, first_seen_at, caused_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(at)
    .bind(caused_by)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 1 {
        return Ok(true);
    }
    // A redelivered first event must produce the same announcement again (the
    // produce may not have happened before the crash); its id is deterministic.
    let first: Option<Uuid> = sqlx::query("SELECT caused_by FROM ep_known_users WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get("caused_by"))
        .transpose()?;
    Ok(first == Some(caused_by))
}

/// Track a todo's due date and whether it is still open. Idempotent: an event
/// at or below the stored version changes nothing.
pub async fn track_due(pool: &PgPool, ev: &TodoEvent) -> Result<(), StoreError> {
    match &ev.data {
        TodoEventData::Created(c) => {
            sqlx::query(
                "INSERT INTO ep_due_todos (todo_id, user_id, title, due_date, active, version) VALUES ($1,$2,$3,$4,true,$5)
                 ON CONFLICT (todo_id) DO NOTHING",
            )
            .bind(ev.todo_id)
            .bind(&ev.user_id)
            .bind(&c.title)
            .bind(c.due_date)
            .bind(ev.stream_version)
            .execute(pool)
            .await?;
        }
        TodoEventData::Updated(u) => {
            let due_changed = u.due_date.is_some();
            sqlx::query(
                "UPDATE ep_due_todos SET title = COALESCE($2, title),
                   due_date = CASE WHEN $3 THEN $4 ELSE due_date END,
                   notified_at = CASE WHEN $3 THEN NULL ELSE notified_at END,
                   version = $5
                 WHERE todo_id = $1 AND version < $5",
            )
            .bind(ev.todo_id)
            .bind(u.title.as_deref())
            .bind(due_changed)
            .bind(u.due_date.flatten())
            .bind(ev.stream_version)
            .execute(pool)
            .await?;
        }
        TodoEventData::Completed(_) | TodoEventData::Deleted(_) | TodoEventData::Reopened(_) => {
            let active = matches!(ev.data, TodoEventData::Reopened(_));
            sqlx::query("UPDATE ep_due_todos SET active = $2, version = $3 WHERE todo_id = $1 AND version < $3")
                .bind(ev.todo_id)
                .bind(active)
                .bind(ev.stream_version)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct DueTodo {
    pub todo_id: Uuid,
    pub user_id: String,
    pub title: String,
    pub due_date: DateTime<Utc>,
}

/// Open, not yet notified todos due between `now` and `until`.
pub async fn due_between(pool: &PgPool, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<DueTodo>, StoreError> {
    let rows = sqlx::query(
        "SELECT todo_id, user_id, title, due_date FROM ep_due_todos
         WHERE active AND notified_at IS NULL AND due_date >= $1 AND due_date <= $2 ORDER BY due_date LIMIT 1000",
    )
    .bind(now)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DueTodo {
                todo_id: r.try_get("todo_id")?,
                user_id: r.try_get("user_id")?,
                title: r.try_get("title")?,
                due_date: r.try_get("due_date")?,
            })
        })
        .collect()
}

pub async fn mark_notified(pool: &PgPool, todo_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE ep_due_todos SET notified_at = $2 WHERE todo_id = $1").bind(todo_id).bind(at).execute(pool).await?;
    Ok(())
}
