//! Query API: every filter, every sort in both directions, and keyset paging
//! that neither repeats nor skips.

use std::collections::HashSet;

use serde_json::{Value, json};
use system_tests::Platform;
use todo_store::read::Tables;
use todo_store::young::YoungTables;

#[tokio::test]
async fn filters_sorts_and_cursor_pagination() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let priorities = ["low", "medium", "high", "urgent"];
    let mut ids = Vec::new();
    for i in 0..23 {
        let mut body = json!({
            "title": format!("{} item {i:02}", if i % 4 == 0 { "Report" } else { "chore" }),
            "priority": priorities[i % 4],
            "tags": if i % 3 == 0 { json!(["work", "q4"]) } else { json!(["home"]) },
        });
        if i % 2 == 0 {
            body["due_date"] = json!(format!("2027-01-{:02}T10:00:00Z", 1 + i));
        }
        let r = p.api.create("alice", body).await?;
        assert_eq!(r.status, 201, "{}", r.raw);
        ids.push(r.body["id"].as_str().unwrap_or_default().to_string());
    }
    for id in ids.iter().take(5) {
        let r = p
            .api
            .send(
                p.api
                    .http
                    .post(format!("{}/v1/todos/{id}/complete", p.api.command)),
                "alice",
            )
            .await?;
        assert_eq!(r.status, 200);
    }
    p.api
        .create("bob", json!({"title": "Report for bob"}))
        .await?;
    for (i, id) in ids.iter().enumerate() {
        p.api
            .wait_version("alice", id, if i < 5 { 2 } else { 1 })
            .await?;
    }
    let all = p.api.get("alice", "/v1/todos?limit=100").await?.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(all.len(), 23, "bob's todo is not listed for alice");

    // Filters, checked against the same predicate applied client-side.
    let check = |query: &str, pred: &dyn Fn(&Value) -> bool| {
        let want: HashSet<String> = all
            .iter()
            .filter(|t| pred(t))
            .map(|t| t["id"].as_str().unwrap_or_default().to_string())
            .collect();
        (query.to_string(), want)
    };
    let cases = vec![
        check("completed=true", &|t| t["completed"] == true),
        check("completed=false&priority=high,urgent", &|t| {
            t["completed"] == false
                && ["high", "urgent"].contains(&t["priority"].as_str().unwrap_or(""))
        }),
        check("tag=work,q4", &|t| {
            t["tags"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("work")))
        }),
        check("q=REPORT", &|t| {
            t["title"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("report")
        }),
        check("q=%25", &|t| {
            t["title"].as_str().unwrap_or("").contains('%')
        }),
        check(
            "due_after=2027-01-05T00:00:00Z&due_before=2027-01-15T00:00:00Z",
            &|t| {
                t["due_date"]
                    .as_str()
                    .is_some_and(|d| d > "2027-01-05" && d < "2027-01-15")
            },
        ),
    ];
    for (q, want) in cases {
        let got: HashSet<String> = p
            .api
            .get("alice", &format!("/v1/todos?limit=100&{q}"))
            .await?
            .body["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got, want, "filter {q}");
    }

    // Every sort, both directions, paged by 4: the concatenation is the full,
    // correctly ordered list with no repeats.
    for key in ["created_at", "updated_at", "due_date", "priority", "title"] {
        for desc in [false, true] {
            let sort = if desc {
                format!("-{key}")
            } else {
                key.to_string()
            };
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/todos?limit=4&sort={sort}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let r = p.api.get("alice", &path).await?;
                assert_eq!(r.status, 200, "{}", r.raw);
                seen.extend(r.body["items"].as_array().cloned().unwrap_or_default());
                match r.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            let seen_ids: Vec<&str> = seen
                .iter()
                .map(|t| t["id"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(
                seen_ids.iter().collect::<HashSet<_>>().len(),
                23,
                "{sort}: no repeats, no gaps"
            );
            let sort_key = |t: &Value| -> (String, String) {
                let k = match key {
                    "priority" => priorities
                        .iter()
                        .position(|p| *p == t["priority"].as_str().unwrap_or(""))
                        .unwrap_or(0)
                        .to_string(),
                    "title" => t["title"].as_str().unwrap_or("").to_string(),
                    // Timestamps compare as instants, not strings (fraction widths vary).
                    other => t[other]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|d| d.to_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
                        .unwrap_or_else(|| "9999".into()),
                };
                (k, t["id"].as_str().unwrap_or("").to_string())
            };
            let keys: Vec<_> = seen.iter().map(sort_key).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if desc {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "order for sort={sort}");
        }
    }
    Ok(())
}

/// Applies `batches` batches of 20 created todos through the projector's
/// batch apply, each followed, as in the projector, by its young-table
/// check when `young` is given.
async fn project_created(
    pool: &sqlx::PgPool,
    young: Option<&YoungTables>,
    batches: usize,
) -> anyhow::Result<()> {
    use contracts::{Priority, TodoCreated, TodoEvent, TodoEventData};
    for batch in 0..batches {
        let events: Vec<TodoEvent> = (0..20)
            .map(|i| TodoEvent {
                event_id: uuid::Uuid::new_v4(),
                schema_version: 1,
                occurred_at: chrono::Utc::now(),
                user_id: format!("user-{}", i % 7),
                todo_id: uuid::Uuid::new_v4(),
                stream_version: 1,
                trace: None,
                data: TodoEventData::Created(TodoCreated {
                    title: format!("todo {batch}/{i}"),
                    description: String::new(),
                    priority: Priority::Medium,
                    due_date: None,
                    tags: vec![],
                }),
            })
            .collect();
        let applied =
            todo_store::read::apply_batch(pool, todo_store::read::Tables::Live, &events).await?;
        assert_eq!(applied.applied.len(), 20);
        // The projector runs the same check in the background.
        if let Some(young) = young
            && young.due(20)
        {
            young.analyze_young(pool).await?;
        }
    }
    Ok(())
}

/// Sequential scans of `read_todos` so far, by the pool's one connection.
async fn read_todos_seq_scans(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    // A backend's counters reach pg_stat_user_tables when it goes idle.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'read_todos'")
            .fetch_one(pool)
            .await?,
    )
}

/// Sequential scans of `read_todos` in 100 projector batches (2,000 todos)
/// after the first 300 batches (6,000 todos) into a new read model: what a
/// new deployment and the replay's rebuild tables go through before
/// autovacuum's first ANALYZE.
async fn scans_once_grown(pool: &sqlx::PgPool, young: Option<&YoungTables>) -> anyhow::Result<i64> {
    todo_store::migrate::run(pool, todo_store::migrate::Component::Query).await?;
    project_created(pool, young, 300).await?;
    let before = read_todos_seq_scans(pool).await?;
    project_created(pool, young, 100).await?;
    Ok(read_todos_seq_scans(pool).await? - before)
}

/// The projector analyzes the read model's tables while they have no
/// statistics. Without it, Postgres settles on a generic plan from a
/// statement's sixth run and keeps it until the table's statistics change:
/// made while the table was young, the projector's lookup of the batch's
/// rows is a sequential scan, repeated for every batch as the table grows
/// (the control shows it), until autovacuum's first ANALYZE.
#[tokio::test]
async fn the_projector_keeps_its_index_while_a_new_read_model_grows() -> anyhow::Result<()> {
    use devstack::postgres::{Options, Postgres};
    let pg = Postgres::start(Options::for_tests()).await?;

    // One connection each, so its scan counters are the ones flushed.
    let control = todo_store::connect(&pg.create_database("plans").await?, 1).await?;
    let frozen = scans_once_grown(&control, None).await?;
    assert!(
        frozen >= 95,
        "control: without statistics, the projector was expected to scan read_todos \
         in every batch; it scanned it {frozen} times in 100 batches"
    );

    let ours = todo_store::connect(&pg.create_database("plans").await?, 1).await?;
    let young = YoungTables::new(Tables::Live.names());
    let scans = scans_once_grown(&ours, Some(&young)).await?;
    assert!(
        scans <= 2,
        "read_todos was scanned {scans} times in 100 batches (the control: {frozen})"
    );
    let unanalyzed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname IN ('read_todos', 'read_history') AND reltuples < 0",
    )
    .fetch_one(&ours)
    .await?;
    assert_eq!(unanalyzed, 0, "both tables have statistics");
    Ok(())
}
