//! Query side: apply events to the read model exactly once, serve reads,
//! reconstruct history, and rebuild-and-swap for replays.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use contracts::{Priority, TodoEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use todo_domain::Todo;
use uuid::Uuid;

use crate::StoreError;

/// Table names are interpolated only from [`Tables`], a closed set of
/// constants, never from input.
fn audited(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// Which pair of tables to write: the live read model or a rebuild in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    Live,
    Rebuild,
}

impl Tables {
    /// Both tables, for [`crate::young::YoungTables`].
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Tables::Live => &["read_todos", "read_history"],
            Tables::Rebuild => &["read_todos_rebuild", "read_history_rebuild"],
        }
    }
    fn todos(self) -> &'static str {
        match self {
            Tables::Live => "read_todos",
            Tables::Rebuild => "read_todos_rebuild",
        }
    }
    fn history(self) -> &'static str {
        match self {
            Tables::Live => "read_history",
            Tables::Rebuild => "read_history_rebuild",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Seen before (same event id or stream version): nothing changed.
    Duplicate,
}

/// A todo whose newest recorded event is ahead of a missing earlier version:
/// the read model shows it as of `applied_through`; the events after the gap
/// wait in the history and are applied when the gap is filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub todo_id: Uuid,
    pub applied_through: i64,
    pub newest: i64,
    /// Events of this batch that are among the held ones.
    pub arrived: Vec<(Uuid, i64)>,
}

/// What a batch did: the events that were new, and the todos now waiting
/// for a missing version.
#[derive(Debug, Clone, Default)]
pub struct BatchApplied {
    pub applied: HashSet<Uuid>,
    pub held: Vec<Held>,
}

/// Apply one event and record it, in one transaction.
pub async fn apply(pool: &PgPool, tables: Tables, ev: &TodoEvent) -> Result<Applied, StoreError> {
    let applied = apply_batch(pool, tables, std::slice::from_ref(ev))
        .await?
        .applied;
    Ok(if applied.contains(&ev.event_id) {
        Applied::Applied
    } else {
        Applied::Duplicate
    })
}

/// Apply a batch of events (in order) in one transaction, with their dedupe
/// records. Returns the ids of the events that were new (the others were
/// seen before and changed nothing) and the todos held at a gap. Four
/// statements per batch, whatever its size.
pub async fn apply_batch(
    pool: &PgPool,
    tables: Tables,
    events: &[TodoEvent],
) -> Result<BatchApplied, StoreError> {
    if events.is_empty() {
        return Ok(BatchApplied::default());
    }
    let mut tx = pool.begin().await?;
    let envelopes = events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted: HashSet<Uuid> = sqlx::query_scalar(audited(format!(
        "INSERT INTO {} (todo_id, version, event_id, event_type, user_id, occurred_at, envelope)
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]::json[])
         ON CONFLICT DO NOTHING RETURNING event_id",
        tables.history()
    )))
    .bind(events.iter().map(|e| e.todo_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type().to_string()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.user_id.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(envelopes)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    if inserted.is_empty() {
        tx.commit().await?;
        return Ok(BatchApplied::default());
    }
    let mut streams: BTreeMap<Uuid, Vec<&TodoEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| inserted.contains(&e.event_id)) {
        streams.entry(e.todo_id).or_default().push(e);
    }
    let ids: Vec<Uuid> = streams.keys().copied().collect();
    // One statement reads (and locks) the current rows and the newest
    // recorded version per todo: ahead of what this batch folds, that is an
    // event that arrived before a missing one. Rows are locked in id order
    // (a materialized CTE, run before the join), so concurrent appliers
    // cannot deadlock.
    let mut current: HashMap<Uuid, Todo> = HashMap::new();
    let mut newest: HashMap<Uuid, i64> = HashMap::new();
    for r in sqlx::query(audited(format!(
        "WITH locked AS MATERIALIZED (SELECT * FROM {todos} WHERE id = ANY($1) ORDER BY id FOR UPDATE),
              newest AS (SELECT todo_id, max(version) AS newest_version FROM {history} WHERE todo_id = ANY($1) GROUP BY todo_id)
         SELECT n.todo_id, n.newest_version, l.* FROM locked l FULL JOIN newest n ON n.todo_id = l.id",
        todos = tables.todos(),
        history = tables.history()
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    {
        if let (Some(id), Some(v)) = (
            r.try_get::<Option<Uuid>, _>("todo_id")?,
            r.try_get::<Option<i64>, _>("newest_version")?,
        ) {
            newest.insert(id, v);
        }
        if r.try_get::<Option<Uuid>, _>("id")?.is_some() {
            let t = todo_from_row(&r)?;
            current.insert(t.id, t);
        }
    }
    let mut next: Vec<(Uuid, Option<Todo>)> = Vec::with_capacity(streams.len());
    let mut held = Vec::new();
    for (id, mut evs) in streams {
        evs.sort_by_key(|e| e.stream_version);
        let mut state = current.remove(&id);
        let first = state.as_ref().map_or(1, |t| t.version + 1);
        let mut through = first - 1;
        let mut contiguous = true;
        for (expected, e) in (first..).zip(evs.iter()) {
            if e.stream_version != expected {
                contiguous = false;
                break;
            }
            state = todo_domain::apply(state, e);
            through = expected;
        }
        let newest = newest.get(&id).copied().unwrap_or(through);
        if !contiguous || newest > through {
            // Out of order, after a delete, or a gap just filled: rebuild
            // from the recorded history, folding its contiguous prefix.
            (state, through) = refold(&mut tx, tables, id).await?;
        }
        if newest > through {
            held.push(Held {
                todo_id: id,
                applied_through: through,
                newest,
                arrived: evs
                    .iter()
                    .filter(|e| e.stream_version > through)
                    .map(|e| (e.event_id, e.stream_version))
                    .collect(),
            });
        }
        next.push((id, state));
    }
    write_states(&mut tx, tables, &next).await?;
    tx.commit().await?;
    Ok(BatchApplied {
        applied: inserted,
        held,
    })
}

/// Upsert live states and delete deleted ones, one statement each.
async fn write_states(
    tx: &mut Transaction<'_, Postgres>,
    tables: Tables,
    states: &[(Uuid, Option<Todo>)],
) -> Result<(), StoreError> {
    let live: Vec<&Todo> = states
        .iter()
        .filter_map(|(_, t)| t.as_ref())
        .filter(|t| !t.deleted)
        .collect();
    let gone: Vec<Uuid> = states
        .iter()
        .filter(|(_, t)| t.as_ref().is_none_or(|t| t.deleted))
        .map(|(id, _)| *id)
        .collect();
    if !live.is_empty() {
        sqlx::query(audited(format!(
            "INSERT INTO {} (id, owner, title, description, priority, priority_rank, due_date, tags, completed, completed_at, version, created_at, updated_at)
             SELECT t.id, t.owner, t.title, t.description, t.priority, t.priority_rank, t.due_date,
                    ARRAY(SELECT jsonb_array_elements_text(t.tags)), t.completed, t.completed_at, t.version, t.created_at, t.updated_at
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::timestamptz[], $8::jsonb[],
                         $9::bool[], $10::timestamptz[], $11::int8[], $12::timestamptz[], $13::timestamptz[])
                  AS t(id, owner, title, description, priority, priority_rank, due_date, tags, completed, completed_at, version, created_at, updated_at)
             ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, title = EXCLUDED.title, description = EXCLUDED.description,
               priority = EXCLUDED.priority, priority_rank = EXCLUDED.priority_rank, due_date = EXCLUDED.due_date, tags = EXCLUDED.tags,
               completed = EXCLUDED.completed, completed_at = EXCLUDED.completed_at, version = EXCLUDED.version,
               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
            tables.todos()
        )))
        .bind(live.iter().map(|t| t.id).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.owner.clone()).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.title.clone()).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.description.clone()).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.priority.as_str().to_string()).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.priority.rank()).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.due_date).collect::<Vec<_>>())
        .bind(live.iter().map(|t| serde_json::json!(t.tags)).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.completed).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.completed_at).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.version).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(live.iter().map(|t| t.updated_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !gone.is_empty() {
        sqlx::query(audited(format!(
            "DELETE FROM {} WHERE id = ANY($1)",
            tables.todos()
        )))
        .bind(&gone)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The state folded from the recorded history's contiguous prefix of
/// versions, and the last version folded.
async fn refold(
    tx: &mut Transaction<'_, Postgres>,
    tables: Tables,
    id: Uuid,
) -> Result<(Option<Todo>, i64), StoreError> {
    let events = history_in(&mut **tx, tables, id).await?;
    let mut state = None;
    let mut through = 0;
    for (i, e) in events.iter().enumerate() {
        if e.stream_version != i as i64 + 1 {
            break;
        }
        state = todo_domain::apply(state, e);
        through = e.stream_version;
    }
    Ok((state, through))
}

fn todo_from_row(r: &PgRow) -> Result<Todo, StoreError> {
    let priority: String = r.try_get("priority")?;
    Ok(Todo {
        id: r.try_get("id")?,
        owner: r.try_get("owner")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        priority: Priority::parse(&priority)
            .ok_or_else(|| StoreError::Corrupt(format!("priority '{priority}'")))?,
        due_date: r.try_get("due_date")?,
        tags: r.try_get("tags")?,
        completed: r.try_get("completed")?,
        deleted: false,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Todo>, StoreError> {
    sqlx::query("SELECT * FROM read_todos WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| todo_from_row(&r))
        .transpose()
}

async fn history_in<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    tables: Tables,
    id: Uuid,
) -> Result<Vec<TodoEvent>, StoreError> {
    let rows = sqlx::query(audited(format!(
        "SELECT envelope::text AS envelope FROM {} WHERE todo_id = $1 ORDER BY version",
        tables.history()
    )))
    .bind(id)
    .fetch_all(exec)
    .await?;
    rows.into_iter()
        .map(|r| {
            let text: String = r.try_get("envelope")?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("history of {id}: {e}")))
        })
        .collect()
}

/// Every event applied for one todo, oldest first.
pub async fn history(pool: &PgPool, id: Uuid) -> Result<Vec<TodoEvent>, StoreError> {
    history_in(pool, Tables::Live, id).await
}

/// Sort keys of `GET /v1/todos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    DueDate,
    Priority,
    Title,
}

impl SortKey {
    fn expr(self) -> &'static str {
        match self {
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::DueDate => "COALESCE(due_date, '9999-12-31T00:00:00Z'::timestamptz)",
            SortKey::Priority => "priority_rank::int8",
            SortKey::Title => "(title COLLATE \"C\")",
        }
    }

    /// The key of a row, as the cursor stores it.
    pub fn value_of(self, t: &Todo) -> CursorValue {
        match self {
            SortKey::CreatedAt => CursorValue::Time(t.created_at),
            SortKey::UpdatedAt => CursorValue::Time(t.updated_at),
            SortKey::DueDate => CursorValue::Time(t.due_date.unwrap_or_else(no_due_date)),
            SortKey::Priority => CursorValue::Int(t.priority.rank() as i64),
            SortKey::Title => CursorValue::Text(t.title.clone()),
        }
    }
}

/// Where todos without a due date sort (last when ascending).
pub fn no_due_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    Int(i64),
    Time(DateTime<Utc>),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub completed: Option<bool>,
    pub priorities: Vec<Priority>,
    pub tags: Vec<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    pub text: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub sort: SortKey,
    pub descending: bool,
    /// Keyset position: strictly after this (sort value, id).
    pub after: Option<(CursorValue, Uuid)>,
    pub limit: i64,
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of the owner's todos (fetches `limit + 1` to tell if more exist).
pub async fn list(
    pool: &PgPool,
    owner: &str,
    f: &ListFilter,
    page: &Page,
) -> Result<Vec<Todo>, StoreError> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT * FROM read_todos WHERE owner = ");
    q.push_bind(owner.to_string());
    if let Some(c) = f.completed {
        q.push(" AND completed = ").push_bind(c);
    }
    if !f.priorities.is_empty() {
        let ps: Vec<String> = f
            .priorities
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        q.push(" AND priority = ANY(").push_bind(ps).push(")");
    }
    if !f.tags.is_empty() {
        q.push(" AND tags @> ").push_bind(f.tags.clone());
    }
    if let Some(b) = f.due_before {
        q.push(" AND due_date < ").push_bind(b);
    }
    if let Some(a) = f.due_after {
        q.push(" AND due_date > ").push_bind(a);
    }
    if let Some(t) = &f.text {
        q.push(" AND title ILIKE ")
            .push_bind(format!("%{}%", escape_like(t)));
    }
    let expr = page.sort.expr();
    let (cmp, dir) = if page.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &page.after {
        q.push(format!(" AND ({expr}, id) {cmp} ("));
        match value {
            CursorValue::Int(i) => q.push_bind(*i),
            CursorValue::Time(t) => q.push_bind(*t),
            CursorValue::Text(s) => q.push_bind(s.clone()).push(" COLLATE \"C\""),
        };
        q.push(", ").push_bind(*id).push(")");
    }
    q.push(format!(" ORDER BY {expr} {dir}, id {dir} LIMIT "))
        .push_bind(page.limit + 1);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(todo_from_row).collect()
}

/// Every row of the live read model, ordered by id (for comparisons).
pub async fn snapshot(pool: &PgPool) -> Result<Vec<Todo>, StoreError> {
    let rows = sqlx::query("SELECT * FROM read_todos ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(todo_from_row).collect()
}

/// Start a rebuild: empty tables shaped like the live ones.
pub async fn prepare_rebuild(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS read_todos_rebuild; DROP TABLE IF EXISTS read_history_rebuild;
         CREATE TABLE read_todos_rebuild (LIKE read_todos INCLUDING ALL);
         CREATE TABLE read_history_rebuild (LIKE read_history INCLUDING ALL);",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Swap the rebuilt tables in. Under an exclusive lock on the live tables,
/// events the live projector applied after the replay read its high
/// watermarks are copied over first, so nothing applied live is lost.
/// Returns how many such events were caught up.
pub async fn swap_rebuild(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE read_todos, read_history IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let missing: Vec<Uuid> = sqlx::query(
        "INSERT INTO read_history_rebuild SELECT * FROM read_history ON CONFLICT DO NOTHING RETURNING todo_id",
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| r.try_get("todo_id"))
    .collect::<Result<_, _>>()?;
    let caught_up = missing.len() as u64;
    let mut ids = missing;
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let (state, _) = refold(&mut tx, Tables::Rebuild, id).await?;
        write_states(&mut tx, Tables::Rebuild, &[(id, state)]).await?;
    }
    sqlx::raw_sql(
        "ALTER TABLE read_todos RENAME TO read_todos_old; ALTER TABLE read_history RENAME TO read_history_old;
         ALTER TABLE read_todos_rebuild RENAME TO read_todos; ALTER TABLE read_history_rebuild RENAME TO read_history;
         DROP TABLE read_todos_old; DROP TABLE read_history_old;",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(caught_up)
}
