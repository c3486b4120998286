//! The event processor: notifications on create and by the cron sweep,
//! user.registered once per user, retries then DLQ without stopping.

use std::time::Duration;

use serde_json::json;
use system_tests::{Platform, Service, header, payload_json, read_topic};

fn in_hours(h: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(h))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn notifications_and_user_registration() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let _processor = p
        .stack
        .spawn(Service::Processor, &[("SWEEP_SCHEDULE", "\"* * * * * *\"")])
        .await?;
    let soon = p
        .api
        .create(
            "carol",
            json!({"title": "renew passport", "due_date": in_hours(2)}),
        )
        .await?;
    let later = p
        .api
        .create(
            "carol",
            json!({"title": "plan holiday", "due_date": in_hours(72)}),
        )
        .await?;
    let undated = p
        .api
        .create("carol", json!({"title": "read a book"}))
        .await?;
    let dave = p
        .api
        .create("dave", json!({"title": "dave's first"}))
        .await?;
    for r in [&soon, &later, &undated, &dave] {
        assert_eq!(r.status, 201);
    }
    // Give the undated todo a due date inside the window: only the sweep
    // notices that (there is no notification on update).
    let undated_id = undated.body["id"].as_str().unwrap_or_default().to_string();
    let r = p
        .api
        .send(
            p.api
                .http
                .patch(format!("{}/v1/todos/{undated_id}", p.api.command))
                .json(&json!({"due_date": in_hours(5)})),
            "carol",
        )
        .await?;
    assert_eq!(r.status, 200);

    let notes = read_topic(
        &p.stack.broker.brokers(),
        contracts::topics::NOTIFICATION_EVENTS,
        2,
        Duration::from_secs(30),
    )
    .await?;
    let decoded: Vec<contracts::NotificationEvent> = notes
        .iter()
        .map(|m| {
            contracts::schema::decode_notification_event(
                bus::rdkafka::Message::payload(m).unwrap_or_default(),
            )
        })
        .collect::<Result<_, _>>()?;
    let by_todo = |id: &serde_json::Value| {
        decoded
            .iter()
            .filter(|n| n.todo_id.to_string() == id.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let on_create = by_todo(&soon.body["id"]);
    assert_eq!(on_create.len(), 1, "{decoded:?}");
    assert_eq!(on_create[0].reason, "due-soon-on-create");
    assert_eq!(on_create[0].event_type, contracts::NotificationKind::Email);
    let swept = by_todo(&undated.body["id"]);
    assert_eq!(swept.len(), 1, "{decoded:?}");
    assert_eq!(swept[0].reason, "due-soon-sweep");
    assert!(
        by_todo(&later.body["id"]).is_empty(),
        "due in 72 h: no notification"
    );
    for m in &notes {
        assert_eq!(
            header(m, "event-type").as_deref(),
            Some("notification.email")
        );
    }

    let users = read_topic(
        &p.stack.broker.brokers(),
        contracts::topics::USER_EVENTS,
        2,
        Duration::from_secs(30),
    )
    .await?;
    let mut who: Vec<String> = users
        .iter()
        .map(|m| {
            payload_json(m)["user_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        ["carol", "dave"],
        "user.registered exactly once per user"
    );
    assert!(
        users
            .iter()
            .all(|m| payload_json(m)["event_type"] == "user.registered")
    );
    Ok(())
}

#[tokio::test]
async fn failing_events_retry_with_backoff_then_go_to_the_dlq_and_the_consumer_keeps_going()
-> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let _processor = p
        .stack
        .spawn(
            Service::Processor,
            &[
                ("FAULT_FAIL_TITLE_MARKER", "poison-pill"),
                ("MAX_ATTEMPTS", "3"),
                ("BACKOFF_BASE_MS", "20"),
            ],
        )
        .await?;
    let bad = p
        .api
        .create("erin", json!({"title": "poison-pill task"}))
        .await?;
    let good = p
        .api
        .create(
            "erin",
            json!({"title": "after the pill", "due_date": in_hours(1)}),
        )
        .await?;
    assert_eq!((bad.status, good.status), (201, 201));

    let dlq = read_topic(
        &p.stack.broker.brokers(),
        contracts::topics::TODO_EVENTS_DLQ,
        1,
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(dlq.len(), 1);
    let m = &dlq[0];
    assert_eq!(
        header(m, "dlq-error-kind").as_deref(),
        Some("handler-failed")
    );
    assert_eq!(header(m, "dlq-attempts").as_deref(), Some("3"));
    assert_eq!(
        header(m, "dlq-consumer-group").as_deref(),
        Some("event-processor")
    );
    assert!(header(m, "dlq-error").is_some_and(|e| e.contains("poison-pill")));
    assert_eq!(
        header(m, "event-type").as_deref(),
        Some("todo.created"),
        "original headers are kept"
    );
    assert_eq!(
        payload_json(m)["todo_id"],
        bad.body["id"],
        "the original record is dead-lettered unchanged"
    );

    // The later event was still handled.
    let notes = read_topic(
        &p.stack.broker.brokers(),
        contracts::topics::NOTIFICATION_EVENTS,
        1,
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        notes
            .iter()
            .any(|n| payload_json(n)["todo_id"] == good.body["id"])
    );
    Ok(())
}
