//! The audit trail: every mutating request (accepted or refused) is recorded
//! with who, what, when, outcome and trace id in an append-only table, and
//! admins (only) can read it.

use std::time::Duration;

use base64::Engine as _;
use devstack::wait_until;
use serde_json::{Value, json};
use system_tests::Platform;

/// An unsigned token (what dev auth mode accepts) with roles.
fn dev_token(sub: &str, roles: &[&str]) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(json!({"alg": "none"})),
        b64(json!({"sub": sub, "roles": roles}))
    )
}

#[tokio::test]
async fn mutating_requests_are_audited_and_only_admins_read_the_trail() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let http = reqwest::Client::new();
    let cmd = p.command.base_url();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let created = http
        .post(format!("{cmd}/v1/todos"))
        .header("x-user-id", "alice")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"title": "audited"}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Refused requests are audited too: someone else's todo, and no caller.
    let r = http
        .post(format!("{cmd}/v1/todos/{id}/complete"))
        .header("x-user-id", "bob")
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let r = http.delete(format!("{cmd}/v1/todos/{id}")).send().await?;
    assert_eq!(r.status(), 401);

    let audit = format!("{}/v1/admin/audit", p.query.base_url());
    let admin = dev_token("root", &["admin"]);
    let read = || async {
        let v: Value = http
            .get(&audit)
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(v["items"].as_array().cloned().unwrap_or_default())
    };
    wait_until("three audit rows", Duration::from_secs(20), || async {
        read().await.is_ok_and(|rows| rows.len() >= 3)
    })
    .await?;
    let rows = read().await?;
    let find = |actor: &str| {
        rows.iter()
            .find(|r| r["actor"] == actor)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let a = find("alice");
    assert_eq!(a["action"], "POST /v1/todos", "{rows:#?}");
    assert_eq!(a["outcome"], 201);
    assert_eq!(a["service"], "command-service");
    assert_eq!(a["trace_id"], trace);
    assert!(a["at"].is_string() && a["client"] == "127.0.0.1", "{a}");
    let b = find("bob");
    assert_eq!(b["action"], "POST /v1/todos/{id}/complete");
    assert_eq!(b["target"], format!("/v1/todos/{id}/complete"));
    assert_eq!(b["outcome"], 404);
    let anon = find("anonymous");
    assert_eq!(anon["action"], "DELETE /v1/todos/{id}");
    assert_eq!(anon["outcome"], 401);

    // Filters and paging.
    let r: Value = http
        .get(format!("{audit}?actor=bob&limit=1"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["items"][0]["actor"], "bob");
    // Only admins; bad parameters are 400 naming the field.
    let r = http.get(&audit).header("x-user-id", "alice").send().await?;
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{audit}?limit=0"))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("limit"));

    // Append-only.
    let pool = p.stack.pool().await?;
    let refused = sqlx::query("DELETE FROM audit_log").execute(&pool).await;
    assert!(refused.is_err(), "the audit log must refuse deletes");
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory'")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the audit log must refuse updates");
    Ok(())
}
