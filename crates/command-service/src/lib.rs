//! Command service: validates commands, appends events with their outbox rows
//! and idempotency records in one Postgres statement, and relays the outbox to
//! `todo-events`.

pub mod api;
pub mod application;
pub mod config;
pub mod metrics;
pub mod relay;

use std::sync::Arc;
use std::time::Duration;

use api::Transition;
use axum::Router;
use axum::routing::{patch, post};
use service_kit::health::Readiness;
use service_kit::platform::Platform;
use service_kit::server::Server;
use sqlx::PgPool;
use todo_store::migrate::Component;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// The OpenAPI document of this service's HTTP API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub const SERVICE: &str = contracts::metrics::services::COMMAND;

/// What every request and the relay share, behind one reference count.
pub type AppState = service_kit::state::Shared<Resources>;

pub struct Resources {
    pub pool: PgPool,
    pub metrics: metrics::Metrics,
    pub config: Arc<Config>,
    /// Authenticator and rate limits in front of every `/v1` route.
    pub guard: service_kit::rate_limit::AccessGuard,
    /// Wakes the local relay right after a commit.
    pub outbox_wake: Arc<relay::OutboxSignal>,
    /// Outbox rows waiting for the broker, refreshed every second.
    pub outbox_backlog: Arc<std::sync::atomic::AtomicI64>,
    /// Requests stop waiting on a Postgres that keeps failing.
    pub pg_breaker: Arc<telemetry::retry::CircuitBreaker>,
    /// The relay stops hammering a broker that keeps failing.
    pub kafka_breaker: Arc<telemetry::retry::CircuitBreaker>,
    /// Every `/v1` request lands in the audit trail.
    pub auditor: service_kit::audit::Auditor,
    /// Batches concurrent writes into one statement (None: one per request).
    pub committer: Option<todo_store::group::GroupCommitter>,
}

pub struct Application {
    server: Server,
    state: AppState,
    producer: bus::rdkafka::producer::FutureProducer,
    audit_stop: CancellationToken,
    audit_writer: tokio::task::JoinHandle<()>,
}

impl service_kit::launcher::Service for Application {
    const NAME: &'static str = SERVICE;
    type Config = Config;

    fn version(config: &Config) -> String {
        config.platform.version.clone()
    }

    /// Connect, migrate, bind. Binding port 0 picks a free port (tests).
    async fn build(config: Config) -> anyhow::Result<Self> {
        let Platform {
            pool,
            kafka: _,
            producer,
            mut server,
        } = Platform::start(
            SERVICE,
            "COMMAND",
            &config.listen,
            &config.platform,
            &[Component::Command, Component::Audit],
            |k| {
                k.linger_ms = config.kafka_linger_ms;
                k.delivery_timeout_ms = config.kafka_delivery_timeout_ms;
            },
        )
        .await?;
        let audit_stop = CancellationToken::new();
        let (audit_sink, audit_writer) = todo_store::audit::spawn(pool.clone(), audit_stop.clone());
        let metrics = metrics::Metrics::register(server.metrics());
        let open_for = Duration::from_millis(config.breaker_open_ms);
        let committer = (config.group_commit_workers > 0).then(|| {
            todo_store::group::GroupCommitter::spawn(
                pool.clone(),
                config.group_commit_workers,
                config.group_commit_max_batch,
            )
        });
        let state = AppState::new(Resources {
            committer,
            pool,
            pg_breaker: metrics
                .breakers
                .breaker("postgres", config.breaker_failures, open_for),
            kafka_breaker: metrics
                .breakers
                .breaker("kafka", config.breaker_failures, open_for),
            metrics,
            outbox_backlog: Arc::default(),
            auditor: service_kit::audit::Auditor {
                service: SERVICE.into(),
                sink: Arc::new(audit_sink),
            },
            guard: config.access.guard()?,
            config: Arc::new(config),
            outbox_wake: Arc::new(relay::OutboxSignal::default()),
        });
        let readiness = readiness(&state, &producer);
        let server = server.build(api(state.clone()), readiness, Some(OPENAPI));
        Ok(Self {
            server,
            state,
            producer,
            audit_stop,
            audit_writer,
        })
    }

    /// Serve until `shutdown` is cancelled, then drain in-flight requests and
    /// let the relay finish its batch.
    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = if self.state.config.relay_enabled {
            let producer = self.producer.clone();
            let st = self.state.clone();
            let token = shutdown.clone();
            Some(tokio::spawn(async move {
                relay::run(st, producer, token).await
            }))
        } else {
            None
        };
        let gauges = tokio::spawn(relay::export_backlog(self.state.clone(), shutdown.clone()));
        tracing::info!(port = self.server.port(), tls = self.server.is_tls(), version = %self.state.config.platform.version, "command service listening");
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        self.server.serve(shutdown.clone()).await?;
        if let Some(relay) = relay
            && tokio::time::timeout(grace, relay).await.is_err()
        {
            tracing::warn!("relay did not stop within the shutdown timeout");
        }
        gauges.abort();
        // Every request has been answered: flush the audit trail.
        self.audit_stop.cancel();
        if tokio::time::timeout(grace, self.audit_writer)
            .await
            .is_err()
        {
            tracing::warn!("audit writer did not flush within the shutdown timeout");
        }
        Ok(())
    }
}

fn readiness(state: &AppState, producer: &bus::rdkafka::producer::FutureProducer) -> Readiness {
    let pool = state.pool.clone();
    let producer = producer.clone();
    let breaker = state.pg_breaker.clone();
    // Ready means a write would be accepted now. The database ping goes
    // through the writes' breaker: refused while it is open, and once it
    // would let a call through, the ping is that call, so a successful
    // ping closes the breaker for the writes that follow (and a pod whose
    // breaker is open can become ready again without traffic).
    Readiness::new()
        .check("postgres", move || {
            let (breaker, pool) = (breaker.clone(), pool.clone());
            async move {
                breaker
                    .call(todo_store::ready(pool), |_| true)
                    .await
                    .map_err(|open| open.to_string())?
            }
        })
        .check("kafka", move || bus::broker_reachable(producer.clone()))
}

/// The `/v1` routes with their guards; the server adds the shared routes
/// and middleware around them.
pub fn api(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/todos", post(api::create))
        .route(
            "/v1/todos/{id}",
            patch(api::update).merge(api::transition(Transition::Delete)),
        )
        .route(
            "/v1/todos/{id}/complete",
            api::transition(Transition::Complete),
        )
        .route("/v1/todos/{id}/reopen", api::transition(Transition::Reopen))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::inject_faults,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(state.config.request_timeout_ms),
            service_kit::timeout::request_timeout,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::shed_load,
        ))
        // A limited or unauthenticated request costs no more.
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            service_kit::rate_limit::access_guard,
        ))
        // Outermost: refused requests are audited too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.auditor.clone(),
            service_kit::audit::audit_requests,
        ));
    let authenticator = state.guard.authenticator();
    api.with_state(state).layer(axum::Extension(authenticator))
}
