//! `todoctl load`: realistic traffic (creates, updates, completes, reads) at
//! a fixed rate, for demos, dashboards and canary analysis. Point it at a
//! gateway or at one version; make a version bad with its own fault flag
//! (`COMMAND_FAULT_ERROR_RATE`, `COMMAND_FAULT_LATENCY_MS`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rand::Rng as _;

#[derive(Args)]
pub struct LoadArgs {
    /// Command API base URL (or the gateway in front of stable and canary).
    #[arg(
        long,
        env = "TODO_COMMAND_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    command: String,
    /// Query API base URL.
    #[arg(long, env = "TODO_QUERY_URL", default_value = "http://127.0.0.1:8082")]
    query: String,
    /// Requests per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// How long to run; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Distinct users (X-User-Id load-0 … load-N).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Shares of create, update, complete and read, e.g. "40,25,15,20".
    #[arg(long, default_value = "40,25,15,20", value_parser = parse_mix)]
    mix: [u32; 4],
    /// Print a line of counts every this many seconds.
    #[arg(long, default_value_t = 5)]
    report_every_secs: u64,
}

fn parse_mix(s: &str) -> Result<[u32; 4], String> {
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{p}' is not a whole number"))
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [a, b, c, d] if a + b + c + d > 0 => Ok([*a, *b, *c, *d]),
        [_, _, _, _] => Err("the shares must not all be zero".into()),
        _ => Err("give four shares: create,update,complete,read".into()),
    }
}

#[derive(Default)]
struct Counts {
    by_kind_status: BTreeMap<(&'static str, String), u64>,
}

pub async fn run(a: LoadArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate <= 10_000.0,
        "--rate must be in (0, 10000]"
    );
    anyhow::ensure!(a.users >= 1, "--users must be at least 1");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ids: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let counts: Arc<Mutex<Counts>> = Arc::default();
    let total: u32 = a.mix.iter().sum();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut last_report = Instant::now();
    eprintln!(
        "load: {} req/s against {} and {} (mix create/update/complete/read = {:?}); Ctrl-C stops",
        a.rate, a.command, a.query, a.mix
    );
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        if a.duration_secs > 0 && start.elapsed() >= Duration::from_secs(a.duration_secs) {
            break;
        }
        let (pick, user) = {
            let mut rng = rand::rng();
            (rng.random_range(0..total), rng.random_range(0..a.users))
        };
        let known = ids.lock().ok().and_then(|v| {
            if v.is_empty() {
                None
            } else {
                Some(v[rand::rng().random_range(0..v.len())].clone())
            }
        });
        let kind = match (pick, &known) {
            (p, _) if p < a.mix[0] => "create",
            (_, None) => "create",
            (p, _) if p < a.mix[0] + a.mix[1] => "update",
            (p, _) if p < a.mix[0] + a.mix[1] + a.mix[2] => "complete",
            _ => "read",
        };
        let (http, ids, task_counts, command, query) = (
            http.clone(),
            ids.clone(),
            counts.clone(),
            a.command.clone(),
            a.query.clone(),
        );
        tokio::spawn(async move {
            let owner = known.as_ref().map(|k| k.0).unwrap_or(user);
            let uid = format!("load-{owner}");
            let req = match (kind, &known) {
                ("create", _) => {
                    let priority = ["low", "medium", "high", "urgent"][rand::rng().random_range(0..4)];
                    http.post(format!("{command}/v1/todos")).json(&serde_json::json!({
                        "title": format!("load {}", uuid::Uuid::new_v4().simple()),
                        "priority": priority,
                        "tags": ["load"],
                    }))
                }
                ("update", Some((_, id))) => http
                    .patch(format!("{command}/v1/todos/{id}"))
                    .json(&serde_json::json!({"title": format!("edited {}", rand::rng().random_range(0..1000))})),
                ("complete", Some((_, id))) => http.post(format!("{command}/v1/todos/{id}/complete")),
                (_, Some((_, id))) => http.get(format!("{query}/v1/todos/{id}")),
                _ => return,
            };
            let status = match req.header("x-user-id", &uid).send().await {
                Ok(r) => {
                    let s = r.status();
                    if kind == "create"
                        && s.as_u16() == 201
                        && let Ok(v) = r.json::<serde_json::Value>().await
                        && let (Some(id), Ok(mut ids)) = (v["id"].as_str(), ids.lock())
                        && ids.len() < 10_000
                    {
                        ids.push((owner, id.to_string()));
                    }
                    s.as_u16().to_string()
                }
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(_) => "connect-error".into(),
            };
            if let Ok(mut c) = task_counts.lock() {
                *c.by_kind_status.entry((kind, status)).or_default() += 1;
            }
        });
        if last_report.elapsed() >= Duration::from_secs(a.report_every_secs.max(1)) {
            last_report = Instant::now();
            report(&counts, start.elapsed());
        }
    }
    // In-flight requests finish within the client timeout; wait for them so
    // the final counts are complete.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&counts) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report(&counts, start.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn report(counts: &Mutex<Counts>, elapsed: Duration) {
    let Ok(c) = counts.lock() else { return };
    let line: Vec<String> = c
        .by_kind_status
        .iter()
        .map(|((k, s), n)| format!("{k} {s}: {n}"))
        .collect();
    eprintln!("[{:>5.0}s] {}", elapsed.as_secs_f64(), line.join(", "));
}
