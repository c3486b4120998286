//! Event processor tables: users seen so far and todos to sweep for due dates.

use chrono::{DateTime, Utc};
use contracts::{TodoEvent, TodoEventData};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// The processor's tables that grow with every todo (for
/// [`crate::young::YoungTables`]).
pub const TABLES: &[&str] = &["ep_due_todos"];

#[derive(Debug, Clone)]
pub struct DueTodo {
    pub todo_id: Uuid,
    pub user_id: String,
    pub title: String,
    pub due_date: DateTime<Utc>,
}

/// Open, not yet notified todos due between `now` and `until`.
pub async fn due_between(
    pool: &PgPool,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DueTodo>, StoreError> {
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

/// Counts behind the business gauges: open todos past their due date and
/// distinct users with an open todo. Aggregates only: no id leaves Postgres.
pub async fn business_counts(pool: &PgPool, now: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
    let r = sqlx::query(
        "SELECT count(*) FILTER (WHERE due_date < $1) AS overdue,
                count(DISTINCT user_id) AS users
         FROM ep_due_todos WHERE active",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok((r.try_get("overdue")?, r.try_get("users")?))
}

pub async fn mark_notified(
    pool: &PgPool,
    todo_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE ep_due_todos SET notified_at = $2 WHERE todo_id = $1")
        .bind(todo_id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// What the event processor must emit after a batch was recorded.
#[derive(Debug, Default)]
pub struct BatchEffects {
    /// `(user_id, caused_by)`: announce `user.registered` (again, on redelivery
    /// of the event that first showed the user; the id is deterministic).
    pub registered: Vec<(String, Uuid)>,
    /// Todos created with a due date inside the window and not yet notified.
    pub due_soon: Vec<(DueTodo, Uuid)>,
}

#[derive(Debug, Clone)]
struct DueState {
    user_id: String,
    title: String,
    due_date: Option<DateTime<Utc>>,
    active: bool,
    version: i64,
    notified_at: Option<DateTime<Utc>>,
}

/// Record a batch of todo events (users seen, due dates) in one transaction
/// and say what to emit. Idempotent: events at or below a todo's stored
/// version change nothing. `window` is `[now, until]` for due-soon-on-create.
pub async fn apply_batch(
    pool: &PgPool,
    events: &[TodoEvent],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<BatchEffects, StoreError> {
    let mut effects = BatchEffects::default();
    if events.is_empty() {
        return Ok(effects);
    }
    let mut tx = pool.begin().await?;

    // Users: the first event per user in this batch.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&TodoEvent> = events
        .iter()
        .filter(|e| seen.insert(e.user_id.as_str()))
        .collect();
    let rows = sqlx::query(
        "WITH b AS (SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::timestamptz[]) AS b(user_id, caused_by, at)),
         ins AS (INSERT INTO ep_known_users (user_id, first_seen_at, caused_by)
                 SELECT user_id, at, caused_by FROM b ON CONFLICT DO NOTHING RETURNING user_id, caused_by)
         SELECT user_id, caused_by FROM ins
         UNION
         SELECT k.user_id, k.caused_by FROM ep_known_users k JOIN b ON k.user_id = b.user_id AND k.caused_by = b.caused_by",
    )
    .bind(firsts.iter().map(|e| e.user_id.clone()).collect::<Vec<_>>())
    .bind(firsts.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(firsts.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        effects
            .registered
            .push((r.try_get("user_id")?, r.try_get("caused_by")?));
    }

    // Due dates: fold the batch into the stored state of each todo.
    let ids: Vec<Uuid> = {
        let mut v: Vec<Uuid> = events.iter().map(|e| e.todo_id).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut states: std::collections::HashMap<Uuid, DueState> = std::collections::HashMap::new();
    for r in sqlx::query(
        "SELECT todo_id, user_id, title, due_date, active, version, notified_at FROM ep_due_todos
         WHERE todo_id = ANY($1) ORDER BY todo_id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    {
        states.insert(
            r.try_get("todo_id")?,
            DueState {
                user_id: r.try_get("user_id")?,
                title: r.try_get("title")?,
                due_date: r.try_get("due_date")?,
                active: r.try_get("active")?,
                version: r.try_get("version")?,
                notified_at: r.try_get("notified_at")?,
            },
        );
    }
    for e in events {
        let state = states.get_mut(&e.todo_id);
        match (&e.data, state) {
            (TodoEventData::Created(c), None) => {
                states.insert(
                    e.todo_id,
                    DueState {
                        user_id: e.user_id.clone(),
                        title: c.title.clone(),
                        due_date: c.due_date,
                        active: true,
                        version: e.stream_version,
                        notified_at: None,
                    },
                );
            }
            (_, Some(s)) if e.stream_version > s.version => {
                match &e.data {
                    TodoEventData::Created(_) => {}
                    TodoEventData::Updated(u) => {
                        if let Some(t) = &u.title {
                            s.title = t.clone();
                        }
                        if let Some(d) = u.due_date {
                            s.due_date = d;
                            s.notified_at = None;
                        }
                    }
                    TodoEventData::Completed(_) | TodoEventData::Deleted(_) => s.active = false,
                    TodoEventData::Reopened(_) => s.active = true,
                }
                s.version = e.stream_version;
            }
            _ => {}
        }
    }
    let rows: Vec<(&Uuid, &DueState)> = states.iter().collect();
    sqlx::query(
        "INSERT INTO ep_due_todos (todo_id, user_id, title, due_date, active, version, notified_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[], $6::int8[], $7::timestamptz[])
         ON CONFLICT (todo_id) DO UPDATE SET user_id = EXCLUDED.user_id, title = EXCLUDED.title, due_date = EXCLUDED.due_date,
           active = EXCLUDED.active, version = EXCLUDED.version, notified_at = EXCLUDED.notified_at",
    )
    .bind(rows.iter().map(|(id, _)| **id).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.user_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.title.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.due_date).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.active).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.version).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, s)| s.notified_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    // A created todo due inside the window and not notified yet (also after a
    // crash between sending and marking: at least once, same id).
    for e in events {
        if let (TodoEventData::Created(c), Some(s)) = (&e.data, states.get(&e.todo_id)) {
            let due_now = s.due_date.filter(|d| *d >= now && *d <= until);
            if let (Some(due), true, None) = (due_now, s.active, s.notified_at)
                && c.due_date == Some(due)
            {
                effects.due_soon.push((
                    DueTodo {
                        todo_id: e.todo_id,
                        user_id: s.user_id.clone(),
                        title: s.title.clone(),
                        due_date: due,
                    },
                    e.event_id,
                ));
            }
        }
    }
    Ok(effects)
}

/// Mark todos notified, after their notifications were acknowledged.
pub async fn mark_notified_many(
    pool: &PgPool,
    todo_ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if todo_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE ep_due_todos SET notified_at = $2 WHERE todo_id = ANY($1)")
        .bind(todo_ids)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}
