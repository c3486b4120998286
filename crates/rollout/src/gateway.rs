//! Kubernetes Gateway API: the weights of an `HTTPRoute`'s `backendRefs`
//! (stable and canary Services), and the canary Deployment's replicas, which
//! go to zero on rollback.
//!
//! Plain REST against the API server rather than kube-rs: the driver needs
//! four calls (get/patch an HTTPRoute, get/patch a `deployments/scale`), and
//! kube + k8s-openapi would be the largest compile in the workspace. The
//! calls are exactly the verbs `k8s/base/rbac-observer.yaml` grants.
//!
//! Weights are written with a JSON Patch (RFC 6902) whose `test` operations
//! pin the backend names at the patched indices, so a route edited between
//! the read and the write is refused by the API server (422) instead of
//! getting weights on the wrong backend.
//!
//! In a cluster the bearer token is the projected service account token,
//! which the kubelet rotates (about hourly, the old one expiring soon
//! after): the driver reads the token file for every request, never once.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{DriverError, DriverFuture, RolloutDriver, Side};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The bearer token the driver presents.
#[derive(Debug, Clone)]
pub enum BearerToken {
    /// A token that does not change.
    Fixed(String),
    /// A token file, read for every request: projected service account
    /// tokens are rotated in place by the kubelet.
    File(PathBuf),
}

impl BearerToken {
    async fn current(&self) -> Result<String, DriverError> {
        match self {
            Self::Fixed(t) => Ok(t.clone()),
            Self::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|t| t.trim().to_string())
                .map_err(|e| DriverError::Api {
                    what: "Kubernetes API".into(),
                    message: format!("reading the bearer token {}: {e}", path.display()),
                }),
        }
    }
}

/// Where the API server is and how to trust and authenticate to it.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    pub api_server: String,
    pub token: Option<BearerToken>,
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct GatewayApiConfig {
    /// API server base URL, e.g. `https://10.0.0.1:443`.
    pub api_server: String,
    /// Bearer token (the service account token file in-cluster).
    pub token: Option<BearerToken>,
    /// PEM of the CA that signed the API server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    pub namespace: String,
    pub http_route: String,
    /// Service names in the route's `backendRefs`.
    pub stable_service: String,
    pub canary_service: String,
    pub canary_deployment: String,
    /// Replicas the canary gets when traffic moves to it while it is at zero.
    pub canary_replicas: u32,
    /// Blue-green: blue's Deployment (scaled down after the switch's delay)
    /// and the replicas it gets back if a rollback needs it.
    pub stable_deployment: Option<String>,
    pub stable_replicas: u32,
    /// Canary strategy: weights also scale the canary (to zero at 0%, up
    /// when it gains traffic). Blue-green: false, green keeps its replicas at
    /// 0% (it serves the preview) and the controller scales explicitly.
    pub scale_with_weight: bool,
    pub timeout: Duration,
}

impl GatewayApiConfig {
    /// In-cluster: `KUBERNETES_SERVICE_HOST`/`_PORT`, the mounted service
    /// account token (its file, re-read per request) and CA.
    pub fn in_cluster_api() -> Result<ApiAccess, DriverError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| DriverError::Api {
            what: "Kubernetes API".into(),
            message: "KUBERNETES_SERVICE_HOST is not set: not running in a cluster; set driver.gateway_api.api_server".into(),
        })?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let token_file = PathBuf::from(format!("{SA_DIR}/token"));
        let token = token_file.exists().then_some(BearerToken::File(token_file));
        let ca = std::fs::read(format!("{SA_DIR}/ca.crt")).ok();
        Ok(ApiAccess {
            api_server: format!("https://{host}:{port}"),
            token,
            ca_pem: ca,
        })
    }
}

#[derive(Debug, Clone)]
pub struct GatewayApiDriver {
    http: reqwest::Client,
    cfg: GatewayApiConfig,
}

impl GatewayApiDriver {
    pub fn new(cfg: GatewayApiConfig) -> Result<Self, DriverError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout);
        if let Some(pem) = &cfg.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| DriverError::Api {
                what: "Kubernetes API".into(),
                message: format!("CA certificate: {e}"),
            })?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| DriverError::Api {
            what: "Kubernetes API".into(),
            message: e.to_string(),
        })?;
        Ok(Self { http, cfg })
    }

    fn route_url(&self) -> String {
        format!(
            "{}/apis/gateway.networking.k8s.io/v1/namespaces/{}/httproutes/{}",
            self.cfg.api_server.trim_end_matches('/'),
            self.cfg.namespace,
            self.cfg.http_route
        )
    }

    fn scale_url(&self) -> String {
        self.deployment_scale_url(&self.cfg.canary_deployment)
    }

    fn deployment_scale_url(&self, deployment: &str) -> String {
        format!(
            "{}/apis/apps/v1/namespaces/{}/deployments/{}/scale",
            self.cfg.api_server.trim_end_matches('/'),
            self.cfg.namespace,
            deployment
        )
    }

    /// `side`'s Deployment and the replicas it runs with when in service.
    fn deployment(&self, side: Side) -> Result<(&str, u32), DriverError> {
        match side {
            Side::Canary => Ok((&self.cfg.canary_deployment, self.cfg.canary_replicas.max(1))),
            Side::Stable => self
                .cfg
                .stable_deployment
                .as_deref()
                .map(|d| (d, self.cfg.stable_replicas.max(1)))
                .ok_or_else(|| DriverError::Api {
                    what: format!("HTTPRoute {}/{}", self.cfg.namespace, self.cfg.http_route),
                    message: "no stable_deployment configured to scale".into(),
                }),
        }
    }

    /// Merge-patch `deployment`'s scale to `replicas` unless it already has them.
    async fn scale_deployment(&self, deployment: &str, replicas: u32) -> Result<(), DriverError> {
        let url = self.deployment_scale_url(deployment);
        let now = self.call(reqwest::Method::GET, &url, None).await?;
        if now.pointer("/spec/replicas").and_then(Value::as_u64) == Some(u64::from(replicas)) {
            return Ok(());
        }
        self.call(
            reqwest::Method::PATCH,
            &url,
            Some((
                "application/merge-patch+json",
                json!({"spec": {"replicas": replicas}}),
            )),
        )
        .await
        .map(drop)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        patch: Option<(&str, Value)>,
    ) -> Result<Value, DriverError> {
        let what = format!("Kubernetes API {method} {url}");
        let mut req = self
            .http
            .request(method, url)
            .header("accept", "application/json");
        if let Some(t) = &self.cfg.token {
            req = req.bearer_auth(t.current().await?);
        }
        if let Some((content_type, body)) = patch {
            req = req
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| DriverError::Unreachable {
            what: what.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        // Kubernetes answers with a `Status` object whose `message` says why.
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        Err(DriverError::Api {
            what,
            message: format!("HTTP {status}: {message}"),
        })
    }

    /// `(rule, stable ref, canary ref)` indices of every rule that routes to both.
    fn split_rules(&self, route: &Value) -> Result<Vec<(usize, usize, usize)>, DriverError> {
        let rules = route
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let refs = rule
                .get("backendRefs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let find = |name: &str| {
                refs.iter()
                    .position(|r| r.get("name").and_then(Value::as_str) == Some(name))
            };
            if let (Some(s), Some(c)) = (
                find(&self.cfg.stable_service),
                find(&self.cfg.canary_service),
            ) {
                out.push((i, s, c));
            }
        }
        if out.is_empty() {
            return Err(DriverError::Api {
                what: format!("HTTPRoute {}/{}", self.cfg.namespace, self.cfg.http_route),
                message: format!(
                    "no rule has backendRefs to both '{}' and '{}'",
                    self.cfg.stable_service, self.cfg.canary_service
                ),
            });
        }
        Ok(out)
    }

    async fn canary_replicas(&self) -> Result<u64, DriverError> {
        let scale = self
            .call(reqwest::Method::GET, &self.scale_url(), None)
            .await?;
        Ok(scale
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    async fn scale_canary(&self, replicas: u32) -> Result<(), DriverError> {
        self.call(
            reqwest::Method::PATCH,
            &self.scale_url(),
            Some((
                "application/merge-patch+json",
                json!({"spec": {"replicas": replicas}}),
            )),
        )
        .await
        .map(drop)
    }
}

fn weight(route: &Value, rule: usize, backend: usize) -> u64 {
    route
        .pointer(&format!("/spec/rules/{rule}/backendRefs/{backend}/weight"))
        .and_then(Value::as_u64)
        // The Gateway API default weight is 1.
        .unwrap_or(1)
}

impl RolloutDriver for GatewayApiDriver {
    fn set_canary_percent(&self, percent: u32) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            if percent > 100 {
                return Err(DriverError::Percent(percent));
            }
            // A canary at zero replicas gets them before it gets traffic.
            if self.cfg.scale_with_weight && percent > 0 && self.canary_replicas().await? == 0 {
                self.scale_canary(self.cfg.canary_replicas.max(1)).await?;
            }
            let route = self
                .call(reqwest::Method::GET, &self.route_url(), None)
                .await?;
            let mut ops = Vec::new();
            for (i, s, c) in self.split_rules(&route)? {
                for (j, name, w) in [
                    (s, &self.cfg.stable_service, 100 - percent),
                    (c, &self.cfg.canary_service, percent),
                ] {
                    let path = format!("/spec/rules/{i}/backendRefs/{j}");
                    ops.push(json!({"op": "test", "path": format!("{path}/name"), "value": name}));
                    ops.push(json!({"op": "add", "path": format!("{path}/weight"), "value": w}));
                }
            }
            self.call(
                reqwest::Method::PATCH,
                &self.route_url(),
                Some(("application/json-patch+json", Value::Array(ops))),
            )
            .await?;
            // Only once no traffic reaches it does the canary lose its pods.
            if self.cfg.scale_with_weight && percent == 0 && self.canary_replicas().await? > 0 {
                self.scale_canary(0).await?;
            }
            Ok(())
        })
    }

    fn scale_down(&self, side: Side) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let (deployment, _) = self.deployment(side)?;
            self.scale_deployment(deployment, 0).await
        })
    }

    fn scale_up(&self, side: Side) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let (deployment, replicas) = self.deployment(side)?;
            self.scale_deployment(deployment, replicas).await
        })
    }

    fn canary_percent(&self) -> DriverFuture<'_, u32> {
        Box::pin(async move {
            let route = self
                .call(reqwest::Method::GET, &self.route_url(), None)
                .await?;
            let (i, s, c) = self.split_rules(&route)?[0];
            let (sw, cw) = (weight(&route, i, s), weight(&route, i, c));
            let total = sw + cw;
            Ok(((100 * cw + total / 2).checked_div(total).unwrap_or(0)) as u32)
        })
    }
}
