//! `todoctl canary …` and `todoctl rollback`: the observer's canary
//! controller from a terminal (`/api/v1/canaries`).
//!
//! Exit codes (for scripts):
//! - 0: done; for `status`, the rollout is progressing, paused or succeeded
//! - 1: the observer refused (bad name, action not possible now, auth)
//! - 2: the rollout was rolled back or aborted (`status`, `status --wait`)
//! - 3: the observer could not be reached
//! - 4: `status --wait` timed out before the rollout finished
//!
//! `validate` exits 1 when a file is invalid.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use observer_api::canaries::{
    ActionBody, AnalysisObserved, CanaryList, CanaryView, DecisionRecord, Phase,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::lag_cmd::Output;

use crate::exit::{
    REFUSED as EXIT_REFUSED, ROLLED_BACK as EXIT_ROLLED_BACK, TIMED_OUT as EXIT_TIMEOUT,
    UNREACHABLE as EXIT_UNREACHABLE,
};

/// How to reach the observer and who to say you are.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Observer base URL.
    #[arg(
        long,
        env = "OBSERVER_URL",
        default_value = "http://127.0.0.1:8084",
        global = true
    )]
    pub observer_url: String,
    /// Bearer token sent with actions (the observer records its subject).
    #[arg(long, env = "TODOCTL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// With the observer in dev auth mode and no token: act as this user
    /// (an unsigned dev token with the `operator` role; defaults to $USER,
    /// then $LOGNAME, then "todoctl").
    #[arg(long = "as", env = "USER", global = true)]
    pub user: Option<String>,
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10, global = true)]
    pub timeout_secs: u64,
}

const EXIT_CODES: &str = "Exit codes: 0 done (status: progressing, paused or succeeded); 1 error; 2 usage error; 10 refused (unknown canary, action impossible now, not authenticated, invalid spec); 11 rolled back or aborted; 12 observer unreachable; 13 status --wait timed out.";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: CanaryCmd,
}

#[derive(Debug, Subcommand)]
pub enum CanaryCmd {
    /// Rollout phase, step and weight (all canaries, or one). Exit 2 when
    /// rolled back or aborted.
    Status {
        name: Option<String>,
        /// Block until the rollout finishes: exit 0 succeeded, 2 rolled
        /// back/aborted, 4 timed out.
        #[arg(long, requires = "name")]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_timeout_secs: u64,
    },
    /// The values, statistic and thresholds behind the last decision.
    Explain { name: String },
    /// The decision log, newest first.
    History {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Skip the rest of the current step's analysis: next step now.
    Promote(ActionArgs),
    /// Hold the weights and stop analysing until resumed.
    Pause(ActionArgs),
    /// Continue analysing from fresh counts.
    Resume(ActionArgs),
    /// Stop the rollout and return all traffic to stable.
    Abort(ActionArgs),
    /// Start a rollout that the error-budget gate holds (spec `budget:` with
    /// policy require_override); the reason is recorded with your name.
    Start {
        name: String,
        /// Why the rollout may spend a low error budget.
        #[arg(long = "override", value_name = "REASON", required = true)]
        override_reason: String,
    },
    /// Check canary spec files offline (file, line and field on error).
    Validate {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The canary's name (its spec's `name`).
    pub name: String,
    /// Recorded in the decision log with your name.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `todoctl rollback <canary>`: abort the rollout and return all traffic to
/// stable (idempotent).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The canary's name (its spec's `name`).
    pub name: String,
    /// Recorded in the decision log and the audit trail with your name.
    #[arg(long)]
    pub reason: Option<String>,
}

enum Failure {
    Unreachable(String),
    Refused(String),
    /// The observer answered 2xx with a body that is not the API's type.
    Invalid(String),
}

struct Client {
    http: reqwest::Client,
    conn: Conn,
}

impl Client {
    fn new(mut conn: Conn) -> anyhow::Result<Self> {
        if conn.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
            conn.user = Some(std::env::var("LOGNAME").unwrap_or_else(|_| "todoctl".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(conn.timeout_secs))
            .build()?;
        Ok(Self { http, conn })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.conn.observer_url.trim_end_matches('/'))
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Failure> {
        let req = match (&self.conn.token, &self.conn.user) {
            (Some(t), _) => req.bearer_auth(t),
            (None, Some(u)) => req.bearer_auth(dev_token(u)),
            (None, None) => req,
        };
        let resp = req.send().await.map_err(|e| {
            Failure::Unreachable(format!(
                "cannot reach the observer at {}: {e}",
                self.conn.observer_url
            ))
        })?;
        let status = resp.status();
        let url = resp.url().to_string();
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| Failure::Invalid(format!("unexpected answer from {url}: {e}")));
        }
        let problem: Option<Problem> = serde_json::from_slice(&body).ok();
        let detail = problem
            .and_then(|p| p.detail.or(p.title))
            .unwrap_or_else(|| "no detail".into());
        if status.is_server_error() && status.as_u16() != 503 {
            return Err(Failure::Unreachable(format!(
                "observer answered {status}: {detail}"
            )));
        }
        Err(Failure::Refused(format!(
            "observer answered {status}: {detail}"
        )))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, reason: Option<&str>) -> Result<CanaryView, Failure> {
        let mut req = self.http.post(self.url(path));
        if let Some(r) = reason {
            req = req.json(&ActionBody {
                reason: Some(r.to_string()),
            });
        }
        self.send(req).await
    }
}

/// The fields of a problem+json answer that are shown.
#[derive(serde::Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

fn fail(f: Failure) -> ExitCode {
    match f {
        Failure::Unreachable(m) => {
            eprintln!("todoctl: {m}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Failure::Refused(m) => {
            eprintln!("todoctl: {m}");
            ExitCode::from(EXIT_REFUSED)
        }
        Failure::Invalid(m) => {
            eprintln!("todoctl: {m}");
            ExitCode::FAILURE
        }
    }
}

/// An unsigned token (`alg: none`) naming `user` with the `operator` role:
/// what an observer in dev auth mode accepts. An observer verifying tokens
/// (auth_mode=oidc) refuses it with 401; pass a real one with --token.
fn dev_token(user: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::json!({"sub": user, "roles": ["operator"]}))
    )
}

/// Path segment for a canary name.
fn seg(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn phase(c: &CanaryView) -> &'static str {
    c.rollout
        .as_ref()
        .map(|r| r.phase.as_str())
        .unwrap_or("not started")
}

/// The canary weight as the JSON answer has it (`null` before the rollout
/// started).
fn weight(c: &CanaryView) -> String {
    c.rollout
        .as_ref()
        .map(|r| r.weight.to_string())
        .unwrap_or_else(|| "null".into())
}

fn last_reason(c: &CanaryView) -> &str {
    c.last_decision
        .as_ref()
        .map(|d| d.reason.as_str())
        .unwrap_or("")
}

fn exit_for_phase(p: &str) -> ExitCode {
    if p == Phase::RolledBack.as_str() || p == Phase::Aborted.as_str() {
        ExitCode::from(EXIT_ROLLED_BACK)
    } else {
        ExitCode::SUCCESS
    }
}

/// Pretty JSON with the keys sorted, as the observer's answer read into a
/// `serde_json::Value` always printed.
fn print_json<T: Serialize>(v: &T) {
    let v = serde_json::to_value(v).unwrap_or_default();
    println!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    );
}

/// A value as it appears in the JSON answer (`1.0`, `null`; a string
/// without its quotes).
fn js<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v).unwrap_or_default() {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn status_table(canaries: &[&CanaryView]) {
    println!(
        "{:<20} {:<14} {:<14} {:>6} {:>7}  {:<9} LAST DECISION",
        "CANARY", "VERSION", "PHASE", "WEIGHT", "STEP", "ANALYSED"
    );
    for c in canaries {
        let r = c.rollout.as_ref();
        let step = r.map(|r| r.analysis.step as u64 + 1).unwrap_or(0);
        let last = match &c.last_decision {
            None => "-".to_string(),
            Some(d) => format!("{} {} by {}: {}", d.action, d.verdict, d.actor, d.reason),
        };
        // A blue-green rollout has one analysis phase, then the switch.
        let steps = match c.strategy {
            canary::Strategy::Canary => format!("{step:>3}/{:<3}", c.steps.len()),
            canary::Strategy::BlueGreen => format!("{:>7}", "b/g"),
        };
        println!(
            "{:<20} {:<14} {:<14} {:>5}% {}  {:<9} {}",
            c.name,
            c.canary_version,
            phase(c),
            r.map(|r| r.weight).unwrap_or(0),
            steps,
            format!("{}s", r.map(|r| r.analysed_secs).unwrap_or(0)),
            last
        );
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn explain_text(c: &CanaryView) -> Result<(), Failure> {
    println!(
        "canary {} ({} against stable {}), phase {}, canary weight {}%",
        c.name,
        c.canary_version,
        c.stable_version,
        phase(c),
        c.rollout.as_ref().map(|r| r.weight).unwrap_or(0)
    );
    if let Some(bg) = &c.blue_green {
        let st = c.rollout.as_ref().and_then(|r| r.blue_green.clone());
        let st = st.unwrap_or_default();
        println!(
            "strategy       blue_green: green {} on preview {} ({} req/s load hook on {}), blue {}",
            c.canary_version,
            bg.preview,
            js(&bg.load.rate),
            bg.load.url,
            c.stable_version
        );
        match (&st.switched_at, &st.scale_down_at) {
            (Some(at), Some(until)) => println!(
                "  switched     at {}; blue scaled down at {} (scale_down_delay_secs {}); until then rollback is instant",
                js(at),
                js(until),
                bg.scale_down_delay_secs
            ),
            _ => println!("  switched     not yet: user traffic on blue"),
        }
        if !st.scaled_down.is_empty() {
            println!("  scaled down  {}", st.scaled_down.join(", "));
        }
    }
    if let Some(d) = &c.last_decision {
        println!(
            "last decision  #{} at {}: {} → {} by {}",
            d.id,
            js(&d.at),
            d.action,
            d.verdict,
            d.actor
        );
        println!("  reason       {}", d.reason);
    }
    let Some(a) = &c.last_analysis else {
        println!("no analysis yet (the first interval sets the baseline)");
        return Ok(());
    };
    let analysis = a.analysis().map_err(|e| {
        Failure::Invalid(format!("decision #{} is not an analysis record: {e}", a.id))
    })?;
    let (o, s, i) = (&analysis.observed, &analysis.statistic, &analysis.inputs);
    println!(
        "last analysis  #{} at {}: verdict {} at {}%",
        a.id,
        js(&a.at),
        a.verdict,
        a.step_percent
    );
    println!("  reason       {}", a.reason);
    match o {
        AnalysisObserved::BackendDown { error, .. } => {
            println!("  metrics      unavailable: {error}");
        }
        AnalysisObserved::Data {
            stable,
            canary,
            canary_share,
            ..
        } => {
            println!(
                "  {:<8} {:>9} {:>7} {:>6}   (slow = over {} s)",
                "",
                "requests",
                "5xx",
                "slow",
                js(&i.latency_threshold_seconds)
            );
            for (side, ob) in [("stable", stable), ("canary", canary)] {
                // The counts were printed as JSON values, which ignore the
                // width: unpadded, so the output stays as it was.
                println!("  {side:<8} {} {} {}", ob.requests, ob.errors, ob.slow);
            }
            println!("  canary share of traffic {}", num(*canary_share, 3));
        }
    }
    println!(
        "  statistic    errors LLR {}  latency LLR {}  rollback at ≥ {}  (SPRT, α {} per test, β {}, ratio {})",
        num(s.error_llr, 2),
        num(s.latency_llr, 2),
        num(s.boundary, 2),
        num(Some(i.alpha_per_test), 5),
        js(&i.beta),
        js(&i.ratio)
    );
    println!(
        "  burn rate    {}× (guard {}×, objective {})   canary requests in step {} (min {})",
        num(s.canary_burn_rate, 2),
        js(&i.max_burn_rate),
        js(&i.slo_objective),
        s.canary_requests_in_step,
        i.min_requests
    );
    if let Some(r) = s.canary_dlq_ratio {
        println!("  DLQ ratio    {}", num(Some(r), 4));
    }
    Ok(())
}

fn history_table(rows: &[DecisionRecord]) {
    println!(
        "{:>6}  {:<24} {:<10} {:<10} {:<9} {:>5}→{:<4} REASON",
        "ID", "AT", "ACTOR", "ACTION", "VERDICT", "STEP", "WT"
    );
    for d in rows {
        // The numbers were printed as JSON values, which ignore the width:
        // unpadded, so the output stays as it was.
        println!(
            "{}  {:<24} {:<10} {:<10} {:<9} {}%→{}% {}",
            d.id,
            js(&d.at).chars().take(23).collect::<String>(),
            d.actor,
            d.action,
            d.verdict,
            d.step_percent,
            d.weight_after,
            d.reason
        );
    }
}

/// `canary validate`: every file parses, validates and names a driver.
fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    let mut bad = 0;
    for f in files {
        let shown = f.display().to_string();
        let res = std::fs::read_to_string(f)
            .map_err(|e| format!("{shown}: {e}"))
            .and_then(|t| canary::CanarySpec::from_yaml(&shown, &t).map_err(|e| e.to_string()))
            .and_then(|s| match s.driver {
                Some(_) => Ok(s),
                None => Err(format!(
                    "{shown}: field 'driver': missing (fix: add driver: {{haproxy: …}} or {{gateway_api: …}})"
                )),
            });
        match res {
            Ok(s) => match &s.blue_green {
                Some(bg) if s.strategy == canary::Strategy::BlueGreen => println!(
                    "{shown}: ok ({} blue {} → green {}, blue_green: preview {}, load {} req/s, blue kept {} s after the switch, every {} s)",
                    s.name,
                    s.stable_version,
                    s.canary_version,
                    bg.preview,
                    bg.load.rate,
                    bg.scale_down_delay_secs,
                    s.interval_secs
                ),
                _ => println!(
                    "{shown}: ok ({} {} → {}, steps {:?}, every {} s)",
                    s.name, s.stable_version, s.canary_version, s.steps, s.interval_secs
                ),
            },
            Err(e) => {
                eprintln!("{e}");
                bad += 1;
            }
        }
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    }
}

pub async fn run(a: CanaryArgs) -> anyhow::Result<ExitCode> {
    if let CanaryCmd::Validate { files } = &a.cmd {
        return Ok(validate(files));
    }
    let json = a.conn.output == Output::Json;
    let c = Client::new(a.conn)?;
    let res = match a.cmd {
        CanaryCmd::Status {
            name: None,
            wait: _,
            wait_timeout_secs: _,
        } => c.get::<CanaryList>("/api/v1/canaries").await.map(|v| {
            if json {
                print_json(&v);
            } else {
                let list: Vec<&CanaryView> = v.canaries.iter().collect();
                if list.is_empty() {
                    println!("no canaries (the observer loads them from its canary_dir)");
                } else {
                    status_table(&list);
                }
                for e in &v.spec_errors {
                    eprintln!("spec error: {e}");
                }
            }
            let worst = v.canaries.iter().any(|c| {
                c.rollout
                    .as_ref()
                    .is_some_and(|r| matches!(r.phase, Phase::RolledBack | Phase::Aborted))
            });
            if worst {
                ExitCode::from(EXIT_ROLLED_BACK)
            } else {
                ExitCode::SUCCESS
            }
        }),
        CanaryCmd::Status {
            name: Some(name),
            wait,
            wait_timeout_secs,
        } => {
            let path = format!("/api/v1/canaries/{}", seg(&name));
            let started = Instant::now();
            let mut last_line = String::new();
            loop {
                let v: CanaryView = match c.get(&path).await {
                    Ok(v) => v,
                    Err(f) => return Ok(fail(f)),
                };
                let p = phase(&v);
                let finished = v.rollout.as_ref().is_some_and(|r| r.phase.finished());
                if !wait || finished {
                    if json {
                        print_json(&v);
                    } else {
                        status_table(&[&v]);
                    }
                    break Ok(exit_for_phase(p));
                }
                if !json {
                    let line = format!("{} {}% {}", p, weight(&v), last_reason(&v));
                    if line != last_line {
                        eprintln!("waiting: {line}");
                        last_line = line;
                    }
                }
                if started.elapsed() > Duration::from_secs(wait_timeout_secs) {
                    eprintln!("todoctl: still {p} after {wait_timeout_secs} s");
                    break Ok(ExitCode::from(EXIT_TIMEOUT));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        CanaryCmd::Explain { name } => {
            match c
                .get::<CanaryView>(&format!("/api/v1/canaries/{}", seg(&name)))
                .await
            {
                Ok(v) if json => {
                    print_json(&serde_json::json!({
                        "name": v.name,
                        "rollout": v.rollout,
                        "last_decision": v.last_decision,
                        "last_analysis": v.last_analysis,
                    }));
                    Ok(exit_for_phase(phase(&v)))
                }
                Ok(v) => explain_text(&v).map(|()| exit_for_phase(phase(&v))),
                Err(f) => Err(f),
            }
        }
        CanaryCmd::History { name, limit } => c
            .get::<Vec<DecisionRecord>>(&format!(
                "/api/v1/canaries/{}/decisions?limit={limit}",
                seg(&name)
            ))
            .await
            .map(|v| {
                if json {
                    print_json(&v);
                } else {
                    history_table(&v);
                }
                ExitCode::SUCCESS
            }),
        CanaryCmd::Promote(x) => action(&c, "promote", x, json).await,
        CanaryCmd::Pause(x) => action(&c, "pause", x, json).await,
        CanaryCmd::Resume(x) => action(&c, "resume", x, json).await,
        CanaryCmd::Abort(x) => action(&c, "abort", x, json).await,
        CanaryCmd::Start {
            name,
            override_reason,
        } => {
            let x = ActionArgs {
                name,
                reason: Some(override_reason),
            };
            action(&c, "start", x, json).await
        }
        CanaryCmd::Validate { .. } => Ok(ExitCode::SUCCESS),
    };
    Ok(res.unwrap_or_else(fail))
}

async fn action(c: &Client, what: &str, a: ActionArgs, json: bool) -> Result<ExitCode, Failure> {
    let v = c
        .post(
            &format!("/api/v1/canaries/{}/{what}", seg(&a.name)),
            a.reason.as_deref(),
        )
        .await?;
    if json {
        print_json(&v);
    } else {
        println!(
            "{what}: {} is {} with {}% of traffic on the canary ({})",
            a.name,
            phase(&v),
            weight(&v),
            last_reason(&v)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(a: RollbackArgs) -> anyhow::Result<ExitCode> {
    let json = a.conn.output == Output::Json;
    let c = Client::new(a.conn)?;
    let args = ActionArgs {
        name: a.name,
        reason: a.reason,
    };
    Ok(action(&c, "rollback", args, json)
        .await
        .unwrap_or_else(fail))
}
