//! The HAProxy rollout driver against a real HAProxy: weights move traffic,
//! rollback sends none to the canary, and repeating it changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use devstack::haproxy::{BACKEND, CANARY, Haproxy, STABLE};
use rollout::{HaproxyDriver, RolloutDriver};

/// A backend that counts the requests it serves.
async fn counting_backend() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/v1/todos",
            axum::routing::get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, hits))
}

async fn send(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        let r = http.get(format!("{url}/v1/todos")).send().await?;
        anyhow::ensure!(r.status().is_success(), "gateway answered {}", r.status());
    }
    Ok(())
}

#[tokio::test]
async fn weights_move_traffic_and_rollback_is_idempotent() -> anyhow::Result<()> {
    let (stable_addr, stable_hits) = counting_backend().await?;
    let (canary_addr, canary_hits) = counting_backend().await?;
    let gw = Haproxy::start(&stable_addr, &canary_addr, 0).await?;
    let driver = HaproxyDriver::new(gw.runtime_api(), BACKEND, STABLE, CANARY);
    let http = reqwest::Client::new();
    // Health checks must have marked both servers up before traffic is judged.
    devstack::wait_until(
        "haproxy to see both servers up",
        Duration::from_secs(20),
        || {
            let api = gw.runtime_api();
            async move {
                let Ok(mut s) = tokio::net::TcpStream::connect(&api).await else {
                    return false;
                };
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut out = String::new();
                s.write_all(b"show servers state command\n").await.is_ok()
                    && s.read_to_string(&mut out).await.is_ok()
                    && out
                        .lines()
                        .filter(|l| l.contains(" stable ") || l.contains(" canary "))
                        .all(|l| l.split_whitespace().nth(5) == Some("2"))
                    && out
                        .lines()
                        .filter(|l| l.contains(" stable ") || l.contains(" canary "))
                        .count()
                        == 2
            }
        },
    )
    .await?;

    assert_eq!(driver.canary_percent().await?, 0);
    send(&http, &gw.url(), 50).await?;
    assert_eq!(
        canary_hits.load(Ordering::Relaxed),
        0,
        "weight 0: no canary traffic"
    );

    driver.set_canary_percent(25).await?;
    assert_eq!(driver.canary_percent().await?, 25);
    let (s0, c0) = (
        stable_hits.load(Ordering::Relaxed),
        canary_hits.load(Ordering::Relaxed),
    );
    send(&http, &gw.url(), 200).await?;
    let (ds, dc) = (
        stable_hits.load(Ordering::Relaxed) - s0,
        canary_hits.load(Ordering::Relaxed) - c0,
    );
    assert_eq!(ds + dc, 200);
    assert!(
        (40..=60).contains(&dc),
        "25% of 200 requests should reach the canary, got {dc}"
    );

    // Rollback, twice: same result, no canary traffic afterwards.
    let t = std::time::Instant::now();
    driver.rollback().await?;
    driver.rollback().await?;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(driver.canary_percent().await?, 0);
    let c1 = canary_hits.load(Ordering::Relaxed);
    send(&http, &gw.url(), 100).await?;
    assert_eq!(
        canary_hits.load(Ordering::Relaxed),
        c1,
        "after rollback HAProxy sends nothing to the canary"
    );

    // Promotion to 100% and bad input.
    driver.set_canary_percent(100).await?;
    assert_eq!(driver.canary_percent().await?, 100);
    assert!(driver.set_canary_percent(101).await.is_err());
    let wrong = HaproxyDriver::new(gw.runtime_api(), "no-such-backend", STABLE, CANARY);
    let err = wrong
        .set_canary_percent(10)
        .await
        .expect_err("unknown backend")
        .to_string();
    assert!(
        err.contains("no-such-backend") || err.contains("No such"),
        "{err}"
    );
    Ok(())
}

/// Blue-green on a real HAProxy: green serves only the preview frontend
/// until the switch; the switch moves every user request at once; scaling a
/// side down puts its servers (green's preview one included) in
/// maintenance, and repeating any call, or making it from a new driver (a
/// restarted observer), changes nothing.
#[tokio::test]
async fn blue_green_preview_switch_and_scale_down_are_idempotent() -> anyhow::Result<()> {
    use devstack::haproxy::PREVIEW;
    use rollout::Side;
    let (blue_addr, blue_hits) = counting_backend().await?;
    let (green_addr, green_hits) = counting_backend().await?;
    let gw = Haproxy::start_blue_green(&blue_addr, &green_addr).await?;
    let preview = gw.preview_url().unwrap_or_default();
    let driver = || {
        HaproxyDriver::new(gw.runtime_api(), BACKEND, STABLE, CANARY)
            .with_preview(format!("{PREVIEW}/{CANARY}"))
    };
    let d = driver();
    devstack::wait_until("both servers up", Duration::from_secs(20), || gw.all_up()).await?;
    d.scale_up(Side::Canary).await?;
    d.set_canary_percent(0).await?;
    let http = reqwest::Client::new();
    send(&http, &gw.url(), 20).await?;
    send(&http, &preview, 10).await?;
    assert_eq!(blue_hits.load(Ordering::Relaxed), 20, "users on blue");
    assert_eq!(
        green_hits.load(Ordering::Relaxed),
        10,
        "only preview on green"
    );

    d.set_canary_percent(100).await?;
    driver().set_canary_percent(100).await?;
    send(&http, &gw.url(), 20).await?;
    assert_eq!(
        blue_hits.load(Ordering::Relaxed),
        20,
        "no user on blue after the switch"
    );
    assert_eq!(green_hits.load(Ordering::Relaxed), 30);

    for _ in 0..2 {
        d.scale_down(Side::Stable).await?;
        driver().scale_down(Side::Stable).await?;
    }
    assert_eq!(gw.server_status(BACKEND, STABLE).await?, "MAINT");
    send(&http, &gw.url(), 10).await?;
    assert_eq!(blue_hits.load(Ordering::Relaxed), 20);

    // Back to blue (a rollback after its scale-down), green out.
    d.scale_up(Side::Stable).await?;
    d.set_canary_percent(0).await?;
    d.scale_down(Side::Canary).await?;
    driver().scale_down(Side::Canary).await?;
    assert_eq!(gw.server_status(BACKEND, CANARY).await?, "MAINT");
    assert_eq!(gw.server_status(PREVIEW, CANARY).await?, "MAINT");
    let green_before = green_hits.load(Ordering::Relaxed);
    send(&http, &gw.url(), 10).await?;
    assert_eq!(blue_hits.load(Ordering::Relaxed), 30);
    assert_eq!(green_hits.load(Ordering::Relaxed), green_before);
    Ok(())
}
