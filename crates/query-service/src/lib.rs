//! Query service: projects `todo-events` into the read model and serves it.

pub mod api;
pub mod audit_api;
pub mod config;
pub mod metrics;
pub mod projector;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use bus::rdkafka::consumer::Consumer;
use service_kit::platform::Platform;
use service_kit::server::Server;
use sqlx::PgPool;
use todo_store::migrate::Component;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// The OpenAPI document of this service's HTTP API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub const SERVICE: &str = contracts::metrics::services::QUERY;

/// What every request and the projector share, behind one reference count.
pub type AppState = service_kit::state::Shared<Resources>;

pub struct Resources {
    pub pool: PgPool,
    pub metrics: metrics::Metrics,
    pub config: Arc<Config>,
    /// Authenticator and rate limits in front of every `/v1` route.
    pub guard: service_kit::rate_limit::AccessGuard,
}

pub struct Application {
    server: Server,
    state: AppState,
    kafka: bus::KafkaSettings,
    producer: bus::rdkafka::producer::FutureProducer,
}

impl service_kit::launcher::Service for Application {
    const NAME: &'static str = SERVICE;
    type Config = Config;

    fn version(config: &Config) -> String {
        config.platform.version.clone()
    }

    async fn build(config: Config) -> anyhow::Result<Self> {
        let platform = Platform::start(
            SERVICE,
            "QUERY",
            &config.listen,
            &config.platform,
            &[Component::Query, Component::Audit],
            |k| k.session_timeout_ms = config.kafka_session_timeout_ms,
        )
        .await?;
        let readiness = platform.readiness();
        let Platform {
            pool,
            kafka,
            producer,
            mut server,
        } = platform;
        let metrics = metrics::Metrics::register(server.metrics());
        let state = AppState::new(Resources {
            pool,
            metrics,
            guard: config.access.guard()?,
            config: Arc::new(config),
        });
        let server = server.build(api(state.clone()), readiness, Some(OPENAPI));
        Ok(Self {
            server,
            state,
            kafka,
            producer,
        })
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let projector = if self.state.config.projector_enabled {
            let consumer = self
                .kafka
                .consumer(&self.state.config.group_id)
                .context("creating Kafka consumer")?;
            consumer
                .subscribe(&[contracts::topics::TODO_EVENTS])
                .context("subscribing to todo-events")?;
            let cfg = bus::LoopConfig {
                service: SERVICE,
                group: self.state.config.group_id.clone(),
                dlq_topic: contracts::topics::TODO_EVENTS_DLQ,
                max_attempts: 5,
                backoff_base: Duration::from_millis(50),
                backoff_max: Duration::from_secs(5),
                store_offsets: self.state.config.store_offsets,
                max_batch: 500,
            };
            let handler =
                projector::Projector::new(self.state.pool.clone(), self.state.metrics.clone());
            let metrics = self.state.metrics.clone();
            let producer = self.producer.clone();
            let token = shutdown.clone();
            Some(tokio::spawn(async move {
                bus::consume_batches(
                    &consumer,
                    &producer,
                    &cfg,
                    &metrics.consumer,
                    &handler,
                    token,
                )
                .await;
            }))
        } else {
            None
        };
        tracing::info!(
            port = self.server.port(),
            tls = self.server.is_tls(),
            "query service listening"
        );
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        self.server.serve(shutdown.clone()).await?;
        if let Some(p) = projector
            && tokio::time::timeout(grace, p).await.is_err()
        {
            tracing::warn!("projector did not stop within the shutdown timeout");
        }
        Ok(())
    }
}

/// The `/v1` routes with their guards; the server adds the shared routes
/// and middleware around them.
pub fn api(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/todos", get(api::list))
        .route("/v1/todos/{id}", get(api::get))
        .route("/v1/todos/{id}/history", get(api::history))
        .route("/v1/admin/audit", get(audit_api::list))
        .route_layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_millis(state.config.request_timeout_ms),
            service_kit::timeout::request_timeout,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            service_kit::rate_limit::access_guard,
        ));
    let authenticator = state.guard.authenticator();
    api.with_state(state).layer(axum::Extension(authenticator))
}
