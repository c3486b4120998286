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
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            beta: 0.1,
            ratio: 10.0,
            min_requests: 100,
            latency_threshold_seconds: 0.25,
            slo_objective: 0.999,
            max_burn_rate: 14.4,
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
        let spec: CanarySpec = serde_norway::from_str(text).map_err(|e| SpecError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        spec.validate(file)?;
        Ok(spec)
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
        if a.latency_threshold_seconds.is_nan() || a.latency_threshold_seconds <= 0.0 {
            return Err(bad(
                "analysis.latency_threshold_seconds",
                "must be positive".into(),
                "use a histogram bucket boundary such as 0.25",
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: command-service\ntarget: command-service\nstable: gateway/stable\ncanary: gateway/canary\n";

    #[test]
    fn defaults_fill_in() {
        let s = CanarySpec::from_yaml("c.yaml", GOOD).expect("valid");
        assert_eq!(s.steps, [5, 10, 25, 50, 100]);
        assert_eq!(s.analysis.alpha, 0.01);
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
                format!("{GOOD}analysis:\n  slo_objective: 0.5\n  max_burn_rate: 14.4\n"),
                "analysis.max_burn_rate",
            ),
            (
                "name: x\ntarget: y\nstable: a\ncanary: a\n".to_string(),
                "canary",
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
