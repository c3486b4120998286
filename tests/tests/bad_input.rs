//! Acceptance 9 of the core issue: bad input of every kind gets a 4xx
//! problem+json naming the field, never a 500, and writes nothing.

use reqwest::Method;
use serde_json::{Value, json};
use system_tests::{Platform, Reply};

struct Case {
    name: &'static str,
    method: Method,
    /// `command` or `query`.
    target: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    user: bool,
    status: u16,
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: Method,
    target: &'static str,
    path: impl Into<String>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        target,
        path: path.into(),
        body: None,
        content_type: None,
        headers: vec![],
        user: true,
        status,
        field,
    }
}

fn post_json(name: &'static str, body: Value, status: u16, field: Option<&'static str>) -> Case {
    let mut c = case(name, Method::POST, "command", "/v1/todos", status, field);
    c.body = Some(serde_json::to_vec(&body).unwrap_or_default());
    c.content_type = Some("application/json");
    c
}

fn raw_post(
    name: &'static str,
    body: &[u8],
    content_type: &'static str,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    let mut c = case(name, Method::POST, "command", "/v1/todos", status, field);
    c.body = Some(body.to_vec());
    c.content_type = Some(content_type);
    c
}

fn query(name: &'static str, q: &str, status: u16, field: Option<&'static str>) -> Case {
    case(
        name,
        Method::GET,
        "query",
        format!("/v1/todos?{q}"),
        status,
        field,
    )
}

#[tokio::test]
async fn every_bad_input_gets_a_4xx_problem_naming_the_field() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    // A real todo and a real cursor, to aim bad requests at existing things.
    let mut ids = vec![];
    for t in ["a", "b", "c"] {
        ids.push(
            p.api.create("alice", json!({"title": t})).await?.body["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    for id in &ids {
        p.api.wait_version("alice", id, 1).await?;
    }
    let page = p.api.get("alice", "/v1/todos?limit=1").await?;
    let cursor = page.body["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!cursor.is_empty(), "a first page of one has a next cursor");
    let id = ids[0].clone();
    let pool = p.stack.pool().await?;
    let events_before = todo_store::command::all_events(&pool).await?.len();

    let long = |n: usize| "x".repeat(n);
    let mut cases = vec![
        post_json(
            "title missing",
            json!({"priority": "low"}),
            400,
            Some("title"),
        ),
        post_json(
            "title is a number",
            json!({"title": 42}),
            400,
            Some("title"),
        ),
        post_json("title is null", json!({"title": null}), 400, Some("title")),
        post_json("title empty", json!({"title": ""}), 422, Some("title")),
        // Found while writing the OpenAPI document for schemathesis: Postgres
        // cannot store a NUL, so the relay retried the event forever.
        post_json(
            "title with a NUL",
            json!({"title": "a\u{0}b"}),
            422,
            Some("title"),
        ),
        post_json(
            "description with a control character",
            json!({"title": "ok", "description": "bell\u{7}"}),
            422,
            Some("description"),
        ),
        // Year 10000 in UTC does not fit the event schema's timestamp (a 500).
        post_json(
            "due date past year 9999 in UTC",
            json!({"title": "ok", "due_date": "9999-12-31T23:00:00-10:00"}),
            422,
            Some("due_date"),
        ),
        post_json(
            "title only whitespace",
            json!({"title": "   \t "}),
            422,
            Some("title"),
        ),
        post_json(
            "title 201 characters",
            json!({"title": long(201)}),
            422,
            Some("title"),
        ),
        post_json(
            "description 4001 characters",
            json!({"title": "t", "description": long(4001)}),
            422,
            Some("description"),
        ),
        post_json(
            "priority unknown",
            json!({"title": "t", "priority": "critical"}),
            400,
            Some("priority"),
        ),
        post_json(
            "priority wrong type",
            json!({"title": "t", "priority": 3}),
            400,
            Some("priority"),
        ),
        post_json(
            "tags not a list",
            json!({"title": "t", "tags": "ops"}),
            400,
            Some("tags"),
        ),
        post_json(
            "tag with capitals",
            json!({"title": "t", "tags": ["Ops"]}),
            422,
            Some("tags/0"),
        ),
        post_json(
            "tag with a space",
            json!({"title": "t", "tags": ["ok", "not ok"]}),
            422,
            Some("tags/1"),
        ),
        post_json(
            "tag too long",
            json!({"title": "t", "tags": [long(33)]}),
            422,
            Some("tags/0"),
        ),
        post_json(
            "tag empty",
            json!({"title": "t", "tags": [""]}),
            422,
            Some("tags/0"),
        ),
        post_json(
            "eleven tags",
            json!({"title": "t", "tags": (0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            422,
            Some("tags"),
        ),
        post_json(
            "tag wrong type",
            json!({"title": "t", "tags": [1]}),
            400,
            Some("tags"),
        ),
        post_json(
            "due_date not a date",
            json!({"title": "t", "due_date": "tomorrow"}),
            400,
            Some("due_date"),
        ),
        post_json(
            "due_date wrong type",
            json!({"title": "t", "due_date": 1700000000}),
            400,
            Some("due_date"),
        ),
        post_json(
            "unknown field",
            json!({"title": "t", "colour": "red"}),
            400,
            Some("colour"),
        ),
        post_json(
            "client-chosen id",
            json!({"title": "t", "id": id}),
            400,
            Some("id"),
        ),
        post_json(
            "body is an array",
            json!([{"title": "t"}]),
            400,
            Some("body"),
        ),
        raw_post(
            "body is not JSON",
            b"{title: t",
            "application/json",
            400,
            Some("body"),
        ),
        raw_post("body empty", b"", "application/json", 400, Some("body")),
        raw_post(
            "wrong content type",
            br#"{"title":"t"}"#,
            "text/plain",
            415,
            None,
        ),
        raw_post(
            "huge body",
            format!(r#"{{"title":"{}"}}"#, long(200_000)).as_bytes(),
            "application/json",
            413,
            None,
        ),
        raw_post(
            "invalid UTF-8",
            b"{\"title\":\"\xff\xfe\"}",
            "application/json",
            400,
            Some("title"),
        ),
        case(
            "bad UUID in path",
            Method::POST,
            "command",
            "/v1/todos/not-a-uuid/complete",
            400,
            Some("id"),
        ),
        case(
            "complete unknown todo",
            Method::POST,
            "command",
            format!("/v1/todos/{}/complete", uuid::Uuid::new_v4()),
            404,
            None,
        ),
        case(
            "delete unknown todo",
            Method::DELETE,
            "command",
            format!("/v1/todos/{}", uuid::Uuid::new_v4()),
            404,
            None,
        ),
        case(
            "wrong method",
            Method::PUT,
            "command",
            format!("/v1/todos/{id}"),
            405,
            None,
        ),
        case(
            "unknown route",
            Method::GET,
            "command",
            "/v2/todos",
            404,
            None,
        ),
        query("limit zero", "limit=0", 400, Some("limit")),
        query("limit not a number", "limit=ten", 400, Some("limit")),
        query("limit too large", "limit=1000", 400, Some("limit")),
        query(
            "completed not a bool",
            "completed=maybe",
            400,
            Some("completed"),
        ),
        query(
            "priority unknown",
            "priority=high,critical",
            400,
            Some("priority"),
        ),
        query("sort unknown", "sort=colour", 400, Some("sort")),
        query("cursor garbage", "cursor=%%%garbage", 400, None),
        // A forged cursor carrying a NUL reached Postgres (a 500).
        query(
            "cursor with a NUL",
            "sort=title&cursor=eyJzIjoidGl0bGUiLCJkIjpmYWxzZSwidiI6ImFcdTAwMDAiLCJpZCI6IjAxYTIxNTI3LTlhNDYtNzc1My1hOGYyLTFjNGFjNDQwZDNkZSJ9",
            400,
            Some("cursor"),
        ),
        query("q with a NUL", "q=a%00b", 400, Some("q")),
        query(
            "cursor not ours",
            "cursor=eyJmb28iOjF9",
            400,
            Some("cursor"),
        ),
        query(
            "cursor for another sort",
            &format!("cursor={cursor}&sort=title"),
            400,
            Some("cursor"),
        ),
        query(
            "due_before not a date",
            "due_before=yesterday",
            400,
            Some("due_before"),
        ),
        query(
            "due range empty",
            "due_before=2026-01-01T00:00:00Z&due_after=2027-01-01T00:00:00Z",
            400,
            Some("due_after"),
        ),
        query("unknown parameter", "colour=red", 400, Some("colour")),
        query("tag invalid", "tag=Not_A_Tag", 400, Some("tag")),
        query("q too long", &format!("q={}", long(201)), 400, Some("q")),
        case(
            "get bad UUID",
            Method::GET,
            "query",
            "/v1/todos/1234",
            400,
            Some("id"),
        ),
        case(
            "as_of not a time",
            Method::GET,
            "query",
            format!("/v1/todos/{id}?as_of=last-week"),
            400,
            Some("as_of"),
        ),
        case(
            "history bad UUID",
            Method::GET,
            "query",
            "/v1/todos/zzz/history",
            400,
            Some("id"),
        ),
        case(
            "query service is read-only",
            Method::DELETE,
            "query",
            "/v1/todos",
            405,
            None,
        ),
    ];
    // PATCH cases on an existing todo.
    let patch = |name: &'static str, body: Value, status: u16, field: Option<&'static str>| {
        let mut c = case(
            name,
            Method::PATCH,
            "command",
            format!("/v1/todos/{id}"),
            status,
            field,
        );
        c.body = Some(serde_json::to_vec(&body).unwrap_or_default());
        c.content_type = Some("application/json");
        c
    };
    cases.push(patch("empty patch", json!({}), 422, None));
    cases.push(patch(
        "patch unknown field",
        json!({"done": true}),
        400,
        Some("done"),
    ));
    cases.push(patch(
        "patch title too long",
        json!({"title": long(300)}),
        422,
        Some("title"),
    ));
    let mut c = patch(
        "If-Match garbage",
        json!({"title": "x"}),
        400,
        Some("If-Match"),
    );
    c.headers.push(("if-match", "\"latest\"".into()));
    cases.push(c);
    let mut c = patch("If-Match stale", json!({"title": "x"}), 409, None);
    c.headers.push(("if-match", "\"7\"".into()));
    cases.push(c);
    let mut c = post_json(
        "Idempotency-Key too long",
        json!({"title": "t"}),
        400,
        Some("Idempotency-Key"),
    );
    c.headers.push(("idempotency-key", long(300)));
    cases.push(c);
    let mut c = post_json("no credentials", json!({"title": "t"}), 401, None);
    c.user = false;
    cases.push(c);
    let mut c = post_json("malformed bearer token", json!({"title": "t"}), 401, None);
    c.user = false;
    c.headers.push(("authorization", "Bearer not-a-jwt".into()));
    cases.push(c);

    assert!(cases.len() >= 30, "at least 30 cases, have {}", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let base = if c.target == "command" {
            &p.api.command
        } else {
            &p.api.query
        };
        let mut req = p
            .api
            .http
            .request(c.method.clone(), format!("{base}{}", c.path));
        if let Some(b) = &c.body {
            req = req.body(b.clone());
        }
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in &c.headers {
            req = req.header(*k, v);
        }
        if c.user {
            req = req.header("x-user-id", "alice");
        }
        let r: Reply = system_tests::reply(req.send().await?).await?;
        let fields: Vec<String> = r.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let ok = r.status == c.status
            && r.content_type() == "application/problem+json"
            && r.body["status"].as_u64() == Some(u64::from(c.status))
            && r.body["detail"].as_str().is_some_and(|d| !d.is_empty())
            && c.field.is_none_or(|f| {
                fields.iter().any(|g| {
                    g == f || g.starts_with(&format!("{f}[")) || g.starts_with(&format!("{f}/"))
                })
            });
        if !ok {
            failures.push(format!(
                "{}: expected {} field {:?}, got {} {} {}",
                c.name,
                c.status,
                c.field,
                r.status,
                r.content_type(),
                r.raw.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let events_after = todo_store::command::all_events(&pool).await?.len();
    assert_eq!(events_after, events_before, "no bad request wrote an event");
    Ok(())
}
