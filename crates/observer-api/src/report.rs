//! `GET /api/v1/report`: the daily error-budget report.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportLine {
    pub slo: String,
    pub service: String,
    pub state: String,
    pub objective: f64,
    pub sli: Option<f64>,
    pub budget_remaining: Option<f64>,
    pub time_to_exhaustion_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub generated_at: String,
    pub evaluated_at: f64,
    pub backend: String,
    pub slos: Vec<ReportLine>,
}
