//! The daily error-budget report: on a cron schedule (UTC, six fields with
//! seconds), the latest SLO evaluation is summarised, logged as one JSON line
//! and kept for `GET /api/v1/report`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::slos::SloSnapshot;

pub fn parse_schedule(s: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(s).map_err(|e| format!("`{s}` is not a cron expression: {e}"))
}

pub use observer_api::report::{Report, ReportLine};

pub fn build(snap: &SloSnapshot) -> Report {
    Report {
        generated_at: Utc::now().to_rfc3339(),
        evaluated_at: snap.evaluated_at,
        backend: snap.backend.status.clone(),
        slos: snap
            .slos
            .iter()
            .map(|v| ReportLine {
                slo: v.name.clone(),
                service: v.service.clone(),
                state: v.state.as_str().into(),
                objective: v.objective,
                sli: v.sli,
                budget_remaining: v.budget_remaining,
                time_to_exhaustion_seconds: v.time_to_exhaustion_seconds,
            })
            .collect(),
    }
}

/// On `schedule` (a cron expression), summarise the latest SLO evaluation
/// into `report` and log it, until `shutdown`.
pub async fn run(
    schedule: String,
    snapshot: Arc<RwLock<Option<SloSnapshot>>>,
    report: Arc<RwLock<Option<Report>>>,
    shutdown: CancellationToken,
) {
    let schedule = match parse_schedule(&schedule) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "daily report disabled");
            return;
        }
    };
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let snap = snapshot.read().await.clone();
        if let Some(snap) = snap {
            let r = build(&snap);
            tracing::info!(
                report = %serde_json::to_string(&r).unwrap_or_default(),
                "daily error-budget report"
            );
            *report.write().await = Some(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_errors_name_the_value() {
        assert!(parse_schedule("0 0 8 * * *").is_ok());
        let e = parse_schedule("every day").expect_err("not cron");
        assert!(e.contains("every day"), "{e}");
    }
}
