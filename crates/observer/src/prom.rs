//! A small Prometheus HTTP API client: instant queries with a timeout per
//! request and retries with backoff. Tells an unreachable backend (network
//! errors, 5xx, timeouts) apart from a query Prometheus rejects (4xx).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PromError {
    /// No answer, a timeout or a 5xx after every retry: the backend is down.
    #[error("Prometheus unreachable: {0}")]
    Unreachable(String),
    /// Prometheus answered and refused the query (bad PromQL, 4xx).
    #[error("query `{query}` rejected: {message}")]
    Rejected { query: String, message: String },
}

#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    base: String,
    retries: u32,
    breaker: Option<std::sync::Arc<telemetry::retry::CircuitBreaker>>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

impl PromClient {
    pub fn new(base: &str, timeout: Duration, retries: u32) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            retries,
            breaker: None,
        })
    }

    /// Guard every query with `breaker`: while it is open, queries fail at
    /// once as unreachable (the SLO evaluation and the canary pause).
    pub fn with_breaker(
        mut self,
        breaker: std::sync::Arc<telemetry::retry::CircuitBreaker>,
    ) -> Self {
        self.breaker = Some(breaker);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// While the breaker is not closed, one plain query goes first and
    /// alone. The half-open probe must not share a `try_join` with queries
    /// the breaker refuses: the first refusal would drop the probe with
    /// them, a dropped probe counts as a failure, and the breaker would
    /// never close again.
    pub async fn settle_breaker(&self, at: f64) -> Result<(), PromError> {
        if let Some(b) = &self.breaker
            && b.state() != telemetry::retry::BreakerState::Closed
        {
            self.query("vector(1)", at).await?;
        }
        Ok(())
    }

    /// Instant query at `at` (Unix seconds). Returns the value of a scalar,
    /// or of the single sample of a vector (`sum(...)` has at most one);
    /// `None` for an empty vector.
    pub async fn instant(&self, query: &str, at: f64) -> Result<Option<f64>, PromError> {
        let Some(data) = self.query(query, at).await? else {
            return Ok(None);
        };
        parse_value(&data.result_type, &data.result).map_err(|message| PromError::Rejected {
            query: query.into(),
            message,
        })
    }

    /// Instant query returning every series of a vector with its labels.
    pub async fn vector(&self, query: &str, at: f64) -> Result<Vec<Series>, PromError> {
        let Some(data) = self.query(query, at).await? else {
            return Ok(Vec::new());
        };
        parse_vector(&data.result_type, &data.result).map_err(|message| PromError::Rejected {
            query: query.into(),
            message,
        })
    }

    /// Range query over `[start, end]` every `step` seconds (the page's
    /// graphs): every series with its samples, oldest first.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<RangeSeries>, PromError> {
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step:.3}")),
        ];
        let Some(data) = self.guarded("query_range", &params).await? else {
            return Ok(Vec::new());
        };
        parse_matrix(&data.result_type, &data.result).map_err(|message| PromError::Rejected {
            query: query.into(),
            message,
        })
    }

    async fn query(&self, query: &str, at: f64) -> Result<Option<Data>, PromError> {
        let params = [("query", query.to_string()), ("time", format!("{at:.3}"))];
        self.guarded("query", &params).await
    }

    async fn guarded(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Option<Data>, PromError> {
        let Some(b) = &self.breaker else {
            return self.query_with_retries(endpoint, params).await;
        };
        // A rejected query means Prometheus answered: not its failure.
        b.call(self.query_with_retries(endpoint, params), |e| {
            matches!(e, PromError::Unreachable(_))
        })
        .await
        .map_err(|open| PromError::Unreachable(open.to_string()))?
    }

    async fn query_with_retries(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Option<Data>, PromError> {
        let query = params
            .iter()
            .find(|(k, _)| *k == "query")
            .map_or("", |(_, v)| v.as_str());
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let url = format!("{}/api/v1/{endpoint}", self.base);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(telemetry::retry::backoff(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                ))
                .await;
            }
            let resp = self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status();
            if status.is_server_error() {
                last = format!("HTTP {status}");
                continue;
            }
            let env: Envelope = match resp.json().await {
                Ok(v) => v,
                Err(e) if status.is_success() => {
                    last = format!("unreadable answer: {e}");
                    continue;
                }
                Err(e) => {
                    return Err(PromError::Rejected {
                        query: query.into(),
                        message: format!("HTTP {status}: {e}"),
                    });
                }
            };
            if env.status != "success" {
                return Err(PromError::Rejected {
                    query: query.into(),
                    message: env.error.unwrap_or_else(|| format!("HTTP {status}")),
                });
            }
            return Ok(env.data);
        }
        Err(PromError::Unreachable(last))
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

fn parse_vector(kind: &str, result: &serde_json::Value) -> Result<Vec<Series>, String> {
    if kind != "vector" {
        return Err(format!("expected a vector, got {kind}"));
    }
    let arr = result.as_array().ok_or("vector is not an array")?;
    arr.iter()
        .map(|s| {
            Ok(Series {
                labels: labels_of(s),
                value: sample_value(&s["value"])?,
            })
        })
        .collect()
}

/// One series of a range query: `(unix seconds, value)` pairs, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: std::collections::BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

fn parse_matrix(kind: &str, result: &serde_json::Value) -> Result<Vec<RangeSeries>, String> {
    if kind != "matrix" {
        return Err(format!("expected a matrix, got {kind}"));
    }
    let arr = result.as_array().ok_or("matrix is not an array")?;
    arr.iter()
        .map(|s| {
            let values = s["values"].as_array().ok_or("series without values")?;
            let points = values
                .iter()
                .map(|v| {
                    let t = v
                        .get(0)
                        .and_then(|t| t.as_f64())
                        .ok_or("sample without a time")?;
                    Ok((t, sample_value(v)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(RangeSeries {
                labels: labels_of(s),
                points,
            })
        })
        .collect()
}

fn labels_of(s: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    s.get("metric")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn sample_value(v: &serde_json::Value) -> Result<f64, String> {
    v.get(1)
        .and_then(|x| x.as_str())
        .ok_or_else(|| "sample without a value".to_string())?
        .parse::<f64>()
        .map_err(|e| e.to_string())
}

fn parse_value(kind: &str, result: &serde_json::Value) -> Result<Option<f64>, String> {
    match kind {
        "scalar" => sample_value(result).map(Some),
        "vector" => {
            let arr = result.as_array().ok_or("vector is not an array")?;
            match arr.len() {
                0 => Ok(None),
                1 => sample_value(&arr[0]["value"]).map(Some),
                n => Err(format!(
                    "expected at most one series, got {n} (aggregate the query)"
                )),
            }
        }
        other => Err(format!("unexpected result type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_and_scalars() {
        let v = serde_json::json!([{"metric": {}, "value": [1.0, "0.25"]}]);
        assert_eq!(parse_value("vector", &v), Ok(Some(0.25)));
        assert_eq!(parse_value("vector", &serde_json::json!([])), Ok(None));
        assert_eq!(
            parse_value("scalar", &serde_json::json!([1.0, "3"])),
            Ok(Some(3.0))
        );
        assert!(parse_value("matrix", &serde_json::json!([])).is_err());
    }

    #[test]
    fn parses_matrices() {
        let m =
            serde_json::json!([{"metric": {"group": "g"}, "values": [[10.5, "1"], [20, "NaN"]]}]);
        let s = parse_matrix("matrix", &m).expect("matrix");
        assert_eq!(s[0].labels["group"], "g");
        assert_eq!(s[0].points[0], (10.5, 1.0));
        assert!(s[0].points[1].1.is_nan());
        assert!(parse_matrix("vector", &m).is_err());
    }
}
