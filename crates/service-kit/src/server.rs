//! The HTTP server every service runs, built the same way: the listener
//! (HTTP or HTTPS), the metrics registry with the HTTP RED set already in
//! it, and the middleware stack around the service's own routes.
//!
//! ```text
//! let mut server = ServerBuilder::bind(SERVICE, &version, PREFIX, &config.listen).await?;
//! let metrics = Metrics::register(server.metrics());   // the service's own sets
//! server.live_metrics(move || render(state.clone()));   // or rendered per scrape
//! let server = server.build(api, readiness, Some(OPENAPI));
//! server.serve(shutdown).await?;
//! ```

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use telemetry::metrics::MetricsRegistry;
use tokio_util::sync::CancellationToken;

use crate::common::ListenConfig;
use crate::health::Readiness;
use crate::metrics::{HttpMetrics, LiveFamilies, Scrape};
use crate::tls::ServiceListener;

/// A bound listener and the registry the service's metric sets go into.
pub struct ServerBuilder {
    listener: ServiceListener,
    registry: MetricsRegistry,
    http: HttpMetrics,
    live: Option<LiveFamilies>,
}

impl ServerBuilder {
    /// Bind `listen_addr` (port 0 picks a free port: tests), with TLS when a
    /// certificate is configured (`prefix` names its variables in errors),
    /// and open the registry labelled `service` and `version`.
    pub async fn bind<D>(
        service: &str,
        version: &str,
        prefix: &str,
        listen: &ListenConfig<D>,
    ) -> anyhow::Result<Self> {
        let listener = ServiceListener::bind(&listen.listen_addr, listen.tls(prefix)?).await?;
        let mut registry = MetricsRegistry::new(service, version);
        let http = HttpMetrics::register(&mut registry);
        Ok(Self {
            listener,
            registry,
            http,
            live: None,
        })
    }

    /// Where the service registers the metric sets of what it runs.
    pub fn metrics(&mut self) -> &mut MetricsRegistry {
        &mut self.registry
    }

    /// Families `/metrics` renders from the service's live state at every
    /// scrape (OpenMetrics text without `# EOF`), written before the
    /// registry's: for series that come and go with what the service watches
    /// (see [`LiveFamilies`]).
    pub fn live_metrics<F, Fut>(&mut self, render: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        self.live = Some(LiveFamilies::new(render));
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// `api` behind the shared stack: `/metrics`, `/healthz`, `/readyz`,
    /// `/openapi.json` (when the service has a document), problem+json for
    /// unknown routes and methods, and, around everything, panics caught
    /// as 500, RED metrics, the request span and the body limit.
    pub fn build(self, api: Router, readiness: Readiness, openapi: Option<&'static str>) -> Server {
        let scrape = Scrape {
            registry: self.registry.finish(),
            live: self.live,
        };
        let mut router = api
            .route(
                "/metrics",
                get(crate::metrics::metrics_handler).with_state(scrape),
            )
            .merge(crate::health::routes(readiness));
        if let Some(document) = openapi {
            router = router.merge(crate::openapi::route(document));
        }
        let router = router
            .method_not_allowed_fallback(crate::problem::method_not_allowed)
            .fallback(crate::problem::not_found_fallback)
            .layer(axum::middleware::from_fn(crate::errors::catch_panic))
            .layer(axum::middleware::from_fn_with_state(
                self.http,
                crate::metrics::track_http,
            ))
            .layer(axum::middleware::from_fn(crate::trace::trace_http))
            .layer(DefaultBodyLimit::max(crate::extract::DRAIN_BODY_BYTES));
        Server {
            listener: self.listener,
            router,
        }
    }
}

/// A service ready to serve.
pub struct Server {
    listener: ServiceListener,
    router: Router,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn is_tls(&self) -> bool {
        self.listener.is_tls()
    }

    /// Serve until `shutdown` is cancelled, then finish the requests in
    /// flight.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Ok(self.listener.serve(self.router, shutdown).await?)
    }
}
