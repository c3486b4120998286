//! The daily error-budget report: on a cron schedule (UTC, six fields with
//! seconds), the latest SLO evaluation is summarised, logged as one JSON line
//! and kept for `GET /api/v1/report`.

use std::str::FromStr;

use chrono::Utc;
use serde::Serialize;

use crate::slos::SloSnapshot;

pub fn parse_schedule(s: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(s).map_err(|e| format!("`{s}` is not a cron expression: {e}"))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportLine {
    pub slo: String,
    pub service: String,
    pub state: &'static str,
    pub objective: f64,
    pub sli: Option<f64>,
    pub budget_remaining: Option<f64>,
    pub time_to_exhaustion_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub generated_at: String,
    pub evaluated_at: f64,
    pub backend: &'static str,
    pub slos: Vec<ReportLine>,
}

pub fn build(snap: &SloSnapshot) -> Report {
    Report {
        generated_at: Utc::now().to_rfc3339(),
        evaluated_at: snap.evaluated_at,
        backend: snap.backend.status,
        slos: snap
            .slos
            .iter()
            .map(|v| ReportLine {
                slo: v.name.clone(),
                service: v.service.clone(),
                state: v.state.as_str(),
                objective: v.objective,
                sli: v.sli,
                budget_remaining: v.budget_remaining,
                time_to_exhaustion_seconds: v.time_to_exhaustion_seconds,
            })
            .collect(),
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
