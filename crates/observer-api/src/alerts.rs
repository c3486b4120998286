//! `GET /api/v1/alerts`: the alerts the observer is paging for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Alert labels (`alertname`, `severity`, `slo`, …).
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveAlertView {
    pub labels: Labels,
    pub since: String,
}
