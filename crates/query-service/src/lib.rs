//! Query service: projects `todo-events` into the read model and serves it.

pub mod api;
pub mod audit_api;
pub mod config;
pub mod projector;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use bus::rdkafka::consumer::Consumer;
use service_kit::health::Readiness;
use service_kit::metrics::Metrics;
use service_kit::tls::ServiceListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// The OpenAPI document of this service's HTTP API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub const SERVICE: &str = contracts::metrics::services::QUERY;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    /// Authenticator and rate limits in front of every `/v1` route.
    pub guard: service_kit::rate_limit::AccessGuard,
}

pub struct Application {
    listener: ServiceListener,
    router: Router,
    state: AppState,
    kafka: bus::KafkaSettings,
    producer: bus::rdkafka::producer::FutureProducer,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = todo_store::connect(&config.database_url, config.db_max_connections)
            .await
            .context("connecting to Postgres (database_url)")?;
        for c in [
            todo_store::migrate::Component::Query,
            todo_store::migrate::Component::Audit,
        ] {
            todo_store::migrate::run(&pool, c)
                .await
                .context("migrating")?;
        }
        let mut kafka = bus::KafkaSettings::new(
            config.kafka_brokers.clone(),
            format!("{SERVICE}-{}", config.version),
        );
        kafka.session_timeout_ms = config.kafka_session_timeout_ms;
        let producer = kafka
            .producer()
            .context("creating Kafka producer (kafka_brokers)")?;
        let listener = ServiceListener::bind(&config.listen_addr, config.tls()?).await?;
        let metrics = Metrics::new(SERVICE, &config.version);
        let state = AppState {
            pool,
            metrics,
            guard: service_kit::rate_limit::AccessGuard::new(
                service_kit::auth::authenticator(config.auth_mode, config.auth_oidc.as_ref())?,
                &config.rate_limit,
            )?,
            config: Arc::new(config),
        };
        let readiness = {
            let pool = state.pool.clone();
            let p = producer.clone();
            Readiness::new()
                .check("postgres", move || todo_store::ready(pool.clone()))
                .check("kafka", move || bus::broker_reachable(p.clone()))
        };
        let router = router(state.clone(), readiness);
        Ok(Self {
            listener,
            router,
            state,
            kafka,
            producer,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
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
            let handler = projector::Projector {
                pool: self.state.pool.clone(),
                metrics: self.state.metrics.clone(),
            };
            let metrics = self.state.metrics.clone();
            let producer = self.producer.clone();
            let token = shutdown.clone();
            Some(tokio::spawn(async move {
                bus::consume_batches(&consumer, &producer, &cfg, &metrics, &handler, token).await;
            }))
        } else {
            None
        };
        tracing::info!(
            port = self.port(),
            tls = self.listener.is_tls(),
            "query service listening"
        );
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        self.listener.serve(self.router, shutdown.clone()).await?;
        if let Some(p) = projector
            && tokio::time::timeout(grace, p).await.is_err()
        {
            tracing::warn!("projector did not stop within the shutdown timeout");
        }
        Ok(())
    }
}

pub fn router(state: AppState, readiness: Readiness) -> Router {
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
    Router::new()
        .merge(api)
        .route(
            "/metrics",
            get(service_kit::metrics::metrics_handler).with_state(state.metrics.clone()),
        )
        .merge(service_kit::health::routes(readiness))
        .merge(service_kit::openapi::route(OPENAPI))
        .method_not_allowed_fallback(service_kit::problem::method_not_allowed)
        .fallback(service_kit::problem::not_found_fallback)
        .layer(axum::middleware::from_fn(service_kit::errors::catch_panic))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            service_kit::metrics::track_http,
        ))
        .layer(axum::middleware::from_fn(service_kit::trace::trace_http))
        .layer(axum::Extension(state.guard.authenticator()))
        .with_state(state)
}
