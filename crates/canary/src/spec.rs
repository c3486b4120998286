//! The canary definition (`canary/*.yaml`), validated strictly: unknown
//! fields are errors and every error names the field and how to fix it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// Name of the rollout, e.g. `command-service`.
    pub name: String,
    /// The service under test (its `service` metric label).
    pub target: String,
    /// Where stable traffic goes (driver-specific: HAProxy `backend/server`,
    /// or a Kubernetes Service name for Gateway API).
    pub stable: String,
    pub canary: String,
    /// Value of the `version` metric label that the stable build reports.
    pub stable_version: String,
    /// Value of the `version` label of the build under test. A new value
    /// starts a new rollout; the observer keys rollouts by (name, version).
    pub canary_version: String,
    /// How traffic is moved. Optional for pure analysis (simulation); the
    /// observer refuses a spec without one.
    #[serde(default, with = "serde_norway::with::singleton_map")]
    pub driver: Option<DriverSpec>,
    /// Canary traffic percentages, strictly increasing, ending at 100.
    #[serde(default = "defaults::steps")]
    pub steps: Vec<u32>,
    #[serde(default = "defaults::interval_secs")]
    pub interval_secs: u64,
    /// Give up (roll back) when the rollout has not finished by then.
    #[serde(default = "defaults::max_duration_secs")]
    pub max_duration_secs: u64,
    #[serde(default)]
    pub analysis: AnalysisSpec,
    /// `canary` (default): traffic moves through `steps`. `blue_green`: the
    /// build under test (`canary`, "green") takes no user traffic while a
    /// load hook exercises it on a preview route; on pass one switch sends
    /// all traffic to it. Settings in `blue_green`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Settings of `strategy: blue_green` (required with it, refused without).
    #[serde(default)]
    pub blue_green: Option<BlueGreenSpec>,
    /// Error-budget policy: whether a rollout may start while the target's
    /// SLO error budget is low. Absent: rollouts start whatever the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetGate>,
}

/// How traffic reaches the build under test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A growing share of live traffic, step by step.
    #[default]
    Canary,
    /// No live traffic until one switch; synthetic traffic on a preview route first.
    BlueGreen,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue_green",
        }
    }
}

/// A blue-green rollout: `stable` is blue (live), `canary` is green (preview).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueGreenSpec {
    /// Where green takes preview traffic. HAProxy: `backend/server` of a
    /// backend that only the preview frontend uses (green's server in it is
    /// put in maintenance when green is scaled down). Gateway API: the
    /// preview HTTPRoute's name (documentation; the driver never edits it).
    pub preview: String,
    /// The synthetic traffic green gets before the switch.
    pub load: LoadHook,
    /// Blue stays up this long after the switch, so `todoctl rollback`
    /// switches back at once; then it is scaled down.
    #[serde(default = "defaults::scale_down_delay_secs")]
    pub scale_down_delay_secs: u64,
}

/// The load hook: `todoctl load`'s request mix at a fixed rate, sent by the
/// observer to the preview route while green is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadHook {
    /// Base URL of the preview route of the command API.
    pub url: String,
    /// Base URL for reads (the query API); without it reads are not sent.
    #[serde(default)]
    pub query_url: Option<String>,
    /// Requests per second.
    #[serde(default = "defaults::load_rate")]
    pub rate: f64,
    /// How long the hook sends traffic (from the rollout's start or an
    /// observer restart); it stops earlier when the analysis decides.
    #[serde(default = "defaults::load_duration_secs")]
    pub duration_secs: u64,
    /// Shares of create, update, complete and read (as `todoctl load --mix`).
    #[serde(default = "defaults::load_mix")]
    pub mix: [u32; 4],
}

/// `budget:` — the error-budget policy that gates the start of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetGate {
    /// Share of the period's error budget that must remain (0–1) in every
    /// SLO of the target for a rollout to start, e.g. 0.25.
    pub min_remaining: f64,
    /// What happens below it.
    pub policy: BudgetPolicy,
}

/// What a low error budget does to a new rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPolicy {
    /// The rollout waits (no canary traffic) until the budget recovers.
    Block,
    /// Like `block`, but an operator may start it anyway with
    /// `todoctl canary start NAME --override "reason"` (recorded with them).
    RequireOverride,
    /// The rollout starts; the log records the low budget.
    Warn,
}

impl BudgetPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPolicy::Block => "block",
            BudgetPolicy::RequireOverride => "require_override",
            BudgetPolicy::Warn => "warn",
        }
    }
}

/// Where the traffic split lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum DriverSpec {
    /// HAProxy runtime API: `stable` and `canary` are `backend/server`.
    Haproxy {
        /// `host:port` of a `stats socket ipv4@... level admin`.
        runtime_api: String,
    },
    /// Kubernetes Gateway API: `stable` and `canary` are the Services named
    /// in the HTTPRoute's `backendRefs`.
    GatewayApi {
        namespace: String,
        http_route: String,
        /// Deployment scaled to zero on rollback (and to `canary_replicas`
        /// when a rollout starts with it at zero).
        canary_deployment: String,
        #[serde(default = "defaults::canary_replicas")]
        canary_replicas: u32,
        /// API server URL; unset means in-cluster (`KUBERNETES_SERVICE_HOST`
        /// and the service account token).
        #[serde(default)]
        api_server: Option<String>,
        /// Deployment of `stable` (blue): scaled to zero `scale_down_delay_secs`
        /// after a blue-green switch. Required by `strategy: blue_green`.
        #[serde(default)]
        stable_deployment: Option<String>,
        /// Replicas blue gets back when a rollback needs it after its scale-down.
        #[serde(default = "defaults::canary_replicas")]
        stable_replicas: u32,
    },
}

/// Checks for a canary that consumes from Kafka under its own consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerCheck {
    /// The canary's consumer group (as the observer's lag tailer sees it).
    pub group: String,
    /// Roll back when the group lags further behind than this.
    #[serde(default = "defaults::max_lag_seconds")]
    pub max_lag_seconds: f64,
    /// Roll back when more than this share of the canary's consumed records
    /// is dead-lettered (lower 99.95% confidence bound, like the burn guard).
    #[serde(default = "defaults::max_dlq_ratio")]
    pub max_dlq_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisSpec {
    /// Bound on the probability of rolling back a canary that is no worse.
    pub alpha: f64,
    /// Bound on missing a canary that is `ratio` times worse.
    pub beta: f64,
    /// The regression the test is tuned to detect: the canary's odds of a bad
    /// request `ratio` times stable's.
    pub ratio: f64,
    /// Canary requests a step must see before it is promoted.
    pub min_requests: u64,
    /// A request slower than this counts as bad in the latency test; must be
    /// a bucket boundary of the latency histogram.
    pub latency_threshold_seconds: f64,
    /// The SLO objective of the target (for the absolute burn-rate guard).
    pub slo_objective: f64,
    /// Roll back when the canary alone burns its error budget this fast.
    pub max_burn_rate: f64,
    /// The burn rate the sequential burn test is powered for (its H1; H0
    /// is 1×, the SLO's own pace). Higher catches a badly failing canary
    /// with fewer requests, lower catches milder ones.
    pub sequential_burn_rate: f64,
    /// Lag and DLQ guards when the target consumes from Kafka.
    pub consumer: Option<ConsumerCheck>,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            beta: 0.1,
            ratio: 10.0,
            min_requests: 100,
            latency_threshold_seconds: 0.1,
            slo_objective: 0.999,
            max_burn_rate: 14.4,
            sequential_burn_rate: 50.0,
            consumer: None,
        }
    }
}

mod defaults {
    pub fn steps() -> Vec<u32> {
        vec![5, 10, 25, 50, 100]
    }
    pub fn interval_secs() -> u64 {
        10
    }
    pub fn max_duration_secs() -> u64 {
        3600
    }
    pub fn canary_replicas() -> u32 {
        1
    }
    pub fn max_lag_seconds() -> f64 {
        60.0
    }
    pub fn max_dlq_ratio() -> f64 {
        0.01
    }
    pub fn scale_down_delay_secs() -> u64 {
        300
    }
    pub fn load_rate() -> f64 {
        20.0
    }
    pub fn load_duration_secs() -> u64 {
        600
    }
    pub fn load_mix() -> [u32; 4] {
        [40, 25, 15, 20]
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: field '{field}': {message} (fix: {fix})")]
    Invalid {
        file: String,
        field: String,
        message: String,
        fix: String,
    },
}

impl CanarySpec {
    /// Parse and validate; `file` names the source in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, SpecError> {
        let mut spec: CanarySpec = serde_norway::from_str(text).map_err(|e| SpecError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        spec.validate(file)?;
        if spec.strategy == Strategy::BlueGreen {
            // One analysis phase, on the preview, then one switch to 100%.
            spec.steps = vec![100];
        }
        Ok(spec)
    }

    fn validate_blue_green(&self, file: &str) -> Result<(), SpecError> {
        let bad = |field: &str, message: String, fix: &str| SpecError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            message,
            fix: fix.to_string(),
        };
        let bg = match (self.strategy, &self.blue_green) {
            (Strategy::Canary, None) => return Ok(()),
            (Strategy::Canary, Some(_)) => {
                return Err(bad(
                    "blue_green",
                    "is set but strategy is canary".into(),
                    "add strategy: blue_green, or remove the blue_green block",
                ));
            }
            (Strategy::BlueGreen, None) => {
                return Err(bad(
                    "blue_green",
                    "missing: strategy blue_green needs a preview and a load hook".into(),
                    "add blue_green: {preview: …, load: {url: …}} (see docs/canary.md)",
                ));
            }
            (Strategy::BlueGreen, Some(bg)) => bg,
        };
        if self.steps != [100] && self.steps != defaults::steps() {
            return Err(bad(
                "steps",
                format!(
                    "{:?}: a blue_green rollout has no traffic steps",
                    self.steps
                ),
                "remove steps (green takes 0% until the switch, then 100%)",
            ));
        }
        if bg.preview.trim().is_empty() {
            return Err(bad(
                "blue_green.preview",
                "is empty".into(),
                "name green's preview route (HAProxy backend/server, or the preview HTTPRoute)",
            ));
        }
        match &self.driver {
            Some(DriverSpec::Haproxy { .. }) => {
                let parts: Vec<&str> = bg.preview.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(bad(
                        "blue_green.preview",
                        format!("'{}' is not backend/server", bg.preview),
                        "with the haproxy driver name green's server in the preview backend, e.g. preview/canary",
                    ));
                }
                if self.stable.split('/').next() == Some(parts[0]) {
                    return Err(bad(
                        "blue_green.preview",
                        format!(
                            "'{}' is in the user-facing backend of stable ('{}')",
                            bg.preview, self.stable
                        ),
                        "use a backend only the preview frontend routes to",
                    ));
                }
            }
            Some(DriverSpec::GatewayApi {
                stable_deployment, ..
            }) if stable_deployment
                .as_deref()
                .is_none_or(|d| d.trim().is_empty()) =>
            {
                return Err(bad(
                    "driver.gateway_api.stable_deployment",
                    "missing: blue_green scales blue down after the switch".into(),
                    "name the Deployment behind stable",
                ));
            }
            Some(DriverSpec::GatewayApi { .. }) | None => {}
        }
        let l = &bg.load;
        if !(l.url.starts_with("http://") || l.url.starts_with("https://")) {
            return Err(bad(
                "blue_green.load.url",
                format!("'{}' is not an http(s) URL", l.url),
                "give the preview route's base URL, e.g. http://haproxy:8090",
            ));
        }
        if let Some(q) = &l.query_url
            && !(q.starts_with("http://") || q.starts_with("https://"))
        {
            return Err(bad(
                "blue_green.load.query_url",
                format!("'{q}' is not an http(s) URL"),
                "give the query API's base URL, or remove it",
            ));
        }
        if !(l.rate > 0.0 && l.rate <= 10_000.0) {
            return Err(bad(
                "blue_green.load.rate",
                format!("{} is outside (0, 10000]", l.rate),
                "requests per second, e.g. 20",
            ));
        }
        if l.duration_secs == 0 {
            return Err(bad(
                "blue_green.load.duration_secs",
                "is 0".into(),
                "long enough for analysis.min_requests at the rate, e.g. 300",
            ));
        }
        if l.mix.iter().sum::<u32>() == 0
            || (l.query_url.is_none() && l.mix[..3].iter().sum::<u32>() == 0)
        {
            return Err(bad(
                "blue_green.load.mix",
                format!("{:?} sends no requests", l.mix),
                "shares of create, update, complete, read, e.g. [40, 25, 15, 20]",
            ));
        }
        Ok(())
    }

    pub fn validate(&self, file: &str) -> Result<(), SpecError> {
        let bad = |field: &str, message: String, fix: &str| SpecError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            message,
            fix: fix.to_string(),
        };
        let a = &self.analysis;
        if self.name.trim().is_empty() {
            return Err(bad(
                "name",
                "is empty".into(),
                "name the rollout, e.g. command-service",
            ));
        }
        for (field, v) in [
            ("target", &self.target),
            ("stable", &self.stable),
            ("canary", &self.canary),
            ("stable_version", &self.stable_version),
            ("canary_version", &self.canary_version),
        ] {
            if v.trim().is_empty() {
                return Err(bad(field, "is empty".into(), "set it (see docs/canary.md)"));
            }
        }
        if self.stable_version == self.canary_version {
            return Err(bad(
                "canary_version",
                format!("is the same as stable_version ('{}')", self.stable_version),
                "set the version label the new build reports",
            ));
        }
        match &self.driver {
            Some(DriverSpec::Haproxy { runtime_api }) => {
                if !runtime_api.contains(':') {
                    return Err(bad(
                        "driver.haproxy.runtime_api",
                        format!("'{runtime_api}' is not host:port"),
                        "use the address of a 'stats socket ipv4@host:port level admin'",
                    ));
                }
                for (field, v) in [("stable", &self.stable), ("canary", &self.canary)] {
                    if v.split('/').filter(|p| !p.is_empty()).count() != 2 {
                        return Err(bad(
                            field,
                            format!("'{v}' is not backend/server"),
                            "with the haproxy driver name the server as backend/server, e.g. command/canary",
                        ));
                    }
                }
                if self.stable.split('/').next() != self.canary.split('/').next() {
                    return Err(bad(
                        "canary",
                        format!(
                            "'{}' is not in the backend of stable ('{}')",
                            self.canary, self.stable
                        ),
                        "put both servers in one backend so weights split its traffic",
                    ));
                }
            }
            Some(DriverSpec::GatewayApi {
                namespace,
                http_route,
                canary_deployment,
                ..
            }) => {
                for (field, v) in [
                    ("driver.gateway_api.namespace", namespace),
                    ("driver.gateway_api.http_route", http_route),
                    ("driver.gateway_api.canary_deployment", canary_deployment),
                ] {
                    if v.trim().is_empty() {
                        return Err(bad(field, "is empty".into(), "name the Kubernetes object"));
                    }
                }
            }
            None => {}
        }
        self.validate_blue_green(file)?;
        if let Some(c) = &a.consumer {
            if c.group.trim().is_empty() {
                return Err(bad(
                    "analysis.consumer.group",
                    "is empty".into(),
                    "name the canary's own consumer group",
                ));
            }
            if c.max_lag_seconds.is_nan() || c.max_lag_seconds <= 0.0 {
                return Err(bad(
                    "analysis.consumer.max_lag_seconds",
                    "must be positive".into(),
                    "e.g. 60",
                ));
            }
            if !(c.max_dlq_ratio > 0.0 && c.max_dlq_ratio < 1.0) {
                return Err(bad(
                    "analysis.consumer.max_dlq_ratio",
                    format!("{} is outside (0, 1)", c.max_dlq_ratio),
                    "e.g. 0.01",
                ));
            }
        }
        if let Some(b) = &self.budget
            && !(b.min_remaining > 0.0 && b.min_remaining <= 1.0)
        {
            return Err(bad(
                "budget.min_remaining",
                format!("{} is outside (0, 1]", b.min_remaining),
                "the share of the error budget that must remain, e.g. 0.25",
            ));
        }
        if self.stable == self.canary {
            return Err(bad(
                "canary",
                format!("is the same as stable ('{}')", self.stable),
                "point canary at the new build's backend",
            ));
        }
        if self.steps.is_empty() || self.steps.last() != Some(&100) {
            return Err(bad(
                "steps",
                format!("{:?} does not end at 100", self.steps),
                "end the list with 100, e.g. [5, 10, 25, 50, 100]",
            ));
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) || self.steps[0] == 0 {
            return Err(bad(
                "steps",
                format!("{:?} is not strictly increasing from above 0", self.steps),
                "use increasing percentages, e.g. [5, 10, 25, 50, 100]",
            ));
        }
        if self.interval_secs == 0 {
            return Err(bad(
                "interval_secs",
                "is 0".into(),
                "analyse every few seconds, e.g. 10",
            ));
        }
        if self.max_duration_secs < self.interval_secs * self.steps.len() as u64 {
            return Err(bad(
                "max_duration_secs",
                format!(
                    "{} s cannot fit {} steps of at least {} s",
                    self.max_duration_secs,
                    self.steps.len(),
                    self.interval_secs
                ),
                "raise it or use fewer steps",
            ));
        }
        if !(a.alpha > 0.0 && a.alpha < 0.5) {
            return Err(bad(
                "analysis.alpha",
                format!("{} is outside (0, 0.5)", a.alpha),
                "use a small probability such as 0.01",
            ));
        }
        if !(a.beta > 0.0 && a.beta < 1.0) {
            return Err(bad(
                "analysis.beta",
                format!("{} is outside (0, 1)", a.beta),
                "use e.g. 0.1",
            ));
        }
        if a.ratio <= 1.0 {
            return Err(bad(
                "analysis.ratio",
                format!("{} is not above 1", a.ratio),
                "describe the regression to catch, e.g. 10 (ten times the odds of a bad request)",
            ));
        }
        if a.min_requests == 0 {
            return Err(bad(
                "analysis.min_requests",
                "is 0".into(),
                "require some evidence per step, e.g. 100",
            ));
        }
        let buckets = contracts::metrics::HTTP_BUCKETS;
        if !buckets
            .iter()
            .any(|b| (b - a.latency_threshold_seconds).abs() < 1e-9)
        {
            return Err(bad(
                "analysis.latency_threshold_seconds",
                format!(
                    "{} is not a bucket boundary of {}",
                    a.latency_threshold_seconds,
                    contracts::metrics::HTTP_SERVER_REQUEST_DURATION.name
                ),
                &format!("use one of {buckets:?}"),
            ));
        }
        if !(a.slo_objective > 0.0 && a.slo_objective < 1.0) {
            return Err(bad(
                "analysis.slo_objective",
                format!("{} is outside (0, 1)", a.slo_objective),
                "use the target's SLO, e.g. 0.999",
            ));
        }
        if a.max_burn_rate * (1.0 - a.slo_objective) >= 1.0 || a.max_burn_rate <= 0.0 {
            return Err(bad(
                "analysis.max_burn_rate",
                format!(
                    "{} × error budget {} can never be reached",
                    a.max_burn_rate,
                    1.0 - a.slo_objective
                ),
                "keep max_burn_rate × (1 − slo_objective) below 1",
            ));
        }
        if a.sequential_burn_rate.is_nan() || a.sequential_burn_rate <= 1.0 {
            return Err(bad(
                "analysis.sequential_burn_rate",
                format!("{} is not above 1", a.sequential_burn_rate),
                "use e.g. 50 (a canary failing 50 times the budget's pace)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: command-service\ntarget: command-service\nstable: gateway/stable\ncanary: gateway/canary\nstable_version: '1.0'\ncanary_version: '1.1'\n";

    #[test]
    fn defaults_fill_in() {
        let s = CanarySpec::from_yaml("c.yaml", GOOD).expect("valid");
        assert_eq!(s.steps, [5, 10, 25, 50, 100]);
        assert_eq!(s.analysis.alpha, 0.01);
        assert_eq!(s.driver, None);
    }

    #[test]
    fn budget_gate_parses() {
        let s = CanarySpec::from_yaml(
            "c.yaml",
            &format!("{GOOD}budget:\n  min_remaining: 0.25\n  policy: require_override\n"),
        )
        .expect("valid");
        assert_eq!(
            s.budget,
            Some(BudgetGate {
                min_remaining: 0.25,
                policy: BudgetPolicy::RequireOverride
            })
        );
    }

    #[test]
    fn drivers_parse() {
        let h = CanarySpec::from_yaml(
            "c.yaml",
            &format!("{GOOD}driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n"),
        )
        .expect("haproxy");
        assert_eq!(
            h.driver,
            Some(DriverSpec::Haproxy {
                runtime_api: "127.0.0.1:9999".into()
            })
        );
        let g = CanarySpec::from_yaml(
            "c.yaml",
            &format!("{GOOD}driver:\n  gateway_api:\n    namespace: todo\n    http_route: command\n    canary_deployment: command-canary\n"),
        )
        .expect("gateway");
        assert!(matches!(
            g.driver,
            Some(DriverSpec::GatewayApi {
                canary_replicas: 1,
                api_server: None,
                ..
            })
        ));
    }

    const BG: &str = "strategy: blue_green\nblue_green:\n  preview: preview/canary\n  scale_down_delay_secs: 30\n  load:\n    url: http://127.0.0.1:8090\n    rate: 10\n";

    #[test]
    fn blue_green_parses_with_one_analysis_phase() {
        let s = CanarySpec::from_yaml(
            "c.yaml",
            &format!("{GOOD}driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n{BG}"),
        )
        .expect("blue-green");
        assert_eq!(s.strategy, Strategy::BlueGreen);
        assert_eq!(s.steps, [100]);
        let bg = s.blue_green.expect("settings");
        assert_eq!(bg.scale_down_delay_secs, 30);
        assert_eq!(bg.load.mix, [40, 25, 15, 20]);
        assert_eq!(bg.load.rate, 10.0);
        let plain = CanarySpec::from_yaml("c.yaml", GOOD).expect("canary");
        assert_eq!(plain.strategy, Strategy::Canary);
    }

    /// A consumer build (a projection on its own group) is held to the lag
    /// and DLQ guards in green's one analysis phase, i.e. before the switch
    /// (`complete`), and a green that passes completes in that one phase.
    #[test]
    fn blue_green_consumer_is_checked_before_the_switch() {
        use crate::{ConsumerObservation, Interval, Observation, State, Verdict, analyze};
        let s = CanarySpec::from_yaml(
            "c.yaml",
            &format!(
                "{GOOD}driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n{BG}analysis:\n  min_requests: 50\n  consumer:\n    group: query-service-green\n    max_lag_seconds: 30\n"
            ),
        )
        .expect("blue-green consumer");
        let interval = |lag: f64| Interval::Data {
            stable: Observation {
                requests: 500,
                errors: 0,
                slow: 0,
            },
            canary: Observation {
                requests: 100,
                errors: 0,
                slow: 0,
            },
            consumer: Some(ConsumerObservation {
                lag_seconds: Some(lag),
                consumed: 100,
                dead_lettered: 0,
            }),
        };
        let mut st = State::new(&s);
        let d = analyze(&s, &mut st, &interval(120.0));
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("query-service-green"), "{}", d.reason);
        let mut st = State::new(&s);
        let d = analyze(&s, &mut st, &interval(2.0));
        assert_eq!(d.verdict, Verdict::Complete, "{}", d.reason);
    }

    #[test]
    fn malformed_blue_green_names_the_field() {
        let hap = format!("{GOOD}driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n");
        let cases = [
            (format!("{hap}strategy: bluegreen\n"), "strategy"),
            (format!("{hap}strategy: blue_green\n"), "blue_green"),
            (
                format!("{hap}{}", BG.replace("strategy: blue_green\n", "")),
                "blue_green",
            ),
            (
                format!("{hap}{}", BG.replace("preview/canary", "gateway/green")),
                "blue_green.preview",
            ),
            (
                format!("{hap}{}", BG.replace("preview/canary", "preview")),
                "blue_green.preview",
            ),
            (
                format!(
                    "{hap}{}",
                    BG.replace("http://127.0.0.1:8090", "127.0.0.1:8090")
                ),
                "blue_green.load.url",
            ),
            (
                format!("{hap}{}", BG.replace("rate: 10", "rate: 0")),
                "blue_green.load.rate",
            ),
            (
                format!(
                    "{hap}{}",
                    BG.replace("rate: 10", "rate: 10\n    mix: [0, 0, 0, 5]")
                ),
                "blue_green.load.mix",
            ),
            (format!("{hap}{BG}  colour: green\n"), "colour"),
            (format!("{hap}{BG}steps: [10, 100]\n"), "steps"),
            (
                format!(
                    "{GOOD}driver:\n  gateway_api:\n    namespace: todo\n    http_route: r\n    canary_deployment: c\n{BG}"
                ),
                "driver.gateway_api.stable_deployment",
            ),
        ];
        for (yaml, field) in cases {
            let err = CanarySpec::from_yaml("c.yaml", &yaml)
                .expect_err(field)
                .to_string();
            assert!(err.starts_with("c.yaml"), "{err}");
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn errors_name_file_and_field() {
        let cases = [
            (format!("{GOOD}colour: red\n"), "colour"),
            (format!("{GOOD}steps: [5, 50]\n"), "steps"),
            (format!("{GOOD}steps: [50, 10, 100]\n"), "steps"),
            (format!("{GOOD}analysis:\n  alpha: 0.9\n"), "analysis.alpha"),
            (format!("{GOOD}analysis:\n  ratio: 1\n"), "analysis.ratio"),
            (
                format!("{GOOD}analysis:\n  latency_threshold_seconds: 0.3\n"),
                "analysis.latency_threshold_seconds",
            ),
            (
                format!("{GOOD}analysis:\n  slo_objective: 0.5\n  max_burn_rate: 14.4\n"),
                "analysis.max_burn_rate",
            ),
            (
                "name: x\ntarget: y\nstable: a\ncanary: a\nstable_version: '1'\ncanary_version: '2'\n"
                    .to_string(),
                "canary",
            ),
            (
                format!("{GOOD}canary_version: '1.0'\n").replace("canary_version: '1.1'\n", ""),
                "canary_version",
            ),
            (
                format!("{GOOD}driver:\n  haproxy:\n    runtime_api: nowhere\n"),
                "driver.haproxy.runtime_api",
            ),
            (
                format!("{GOOD}driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n")
                    .replace("canary: gateway/canary", "canary: other/canary"),
                "canary",
            ),
            (
                format!("{GOOD}driver:\n  gateway_api:\n    namespace: todo\n    http_route: ''\n    canary_deployment: c\n"),
                "driver.gateway_api.http_route",
            ),
            (
                format!("{GOOD}analysis:\n  consumer:\n    group: g\n    max_dlq_ratio: 2\n"),
                "analysis.consumer.max_dlq_ratio",
            ),
            (
                format!("{GOOD}analysis:\n  sequential_burn_rate: 0.5\n"),
                "analysis.sequential_burn_rate",
            ),
            (
                format!("{GOOD}budget:\n  min_remaining: 1.5\n  policy: block\n"),
                "budget.min_remaining",
            ),
            (
                format!("{GOOD}budget:\n  min_remaining: 0.25\n  policy: ask_nicely\n"),
                "budget.policy",
            ),
            (
                format!("{GOOD}budget:\n  policy: block\n"),
                "min_remaining",
            ),
            (
                format!("{GOOD}budget:\n  min_remaining: 0.25\n  policy: warn\n  slack: 1\n"),
                "slack",
            ),
        ];
        for (yaml, field) in cases {
            let err = CanarySpec::from_yaml("c.yaml", &yaml)
                .expect_err(field)
                .to_string();
            assert!(err.starts_with("c.yaml"), "{err}");
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}
