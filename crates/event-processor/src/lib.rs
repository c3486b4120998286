//! Event processor: consumes `todo-events`, emits `notification-events` and
//! `user-events`, runs a cron-scheduled due-soon sweep, dead-letters what it
//! cannot handle and keeps going.

pub mod config;
pub mod handler;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use bus::rdkafka::consumer::Consumer;
use service_kit::platform::Platform;
use service_kit::server::Server;
use todo_store::migrate::Component;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = contracts::metrics::services::EVENT_PROCESSOR;

pub struct Application {
    server: Server,
    config: Config,
    processor: Arc<handler::Processor>,
    kafka: bus::KafkaSettings,
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
            "PROCESSOR",
            &config.listen,
            &config.platform,
            &[Component::Processor],
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
        let processor = Arc::new(handler::Processor {
            pool: pool.clone(),
            producer: producer.clone(),
            metrics,
            due_soon: chrono::Duration::hours(config.due_soon_hours),
            fail_marker: config.fault_fail_title_marker.clone(),
            young: todo_store::young::YoungTables::new(todo_store::processor::TABLES),
        });
        let server = server.build(Router::new(), readiness, None);
        Ok(Self {
            server,
            config,
            processor,
            kafka,
        })
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consumer = self
            .kafka
            .consumer(&self.config.group_id)
            .context("creating Kafka consumer")?;
        consumer
            .subscribe(&[contracts::topics::TODO_EVENTS])
            .context("subscribing to todo-events")?;
        let cfg = bus::LoopConfig {
            service: SERVICE,
            group: self.config.group_id.clone(),
            dlq_topic: contracts::topics::TODO_EVENTS_DLQ,
            max_attempts: self.config.max_attempts,
            backoff_base: Duration::from_millis(self.config.backoff_base_ms),
            backoff_max: Duration::from_secs(10),
            store_offsets: true,
            max_batch: 500,
        };
        let p = self.processor.clone();
        let token = shutdown.clone();
        let consume = tokio::spawn(async move {
            bus::consume_batches(
                &consumer,
                &p.producer,
                &cfg,
                &p.metrics.consumer,
                p.as_ref(),
                token,
            )
            .await;
        });
        let sweep = tokio::spawn(sweep_loop(
            self.processor.clone(),
            self.config.schedule()?,
            shutdown.clone(),
        ));
        let gauges = tokio::spawn(business_gauges_loop(
            self.processor.clone(),
            shutdown.clone(),
        ));
        tracing::info!(port = self.server.port(), "event processor running");
        self.server.serve(shutdown.clone()).await?;
        let _ = tokio::time::timeout(Duration::from_secs(20), consume).await;
        sweep.abort();
        gauges.abort();
        Ok(())
    }
}

async fn sweep_loop(
    p: Arc<handler::Processor>,
    schedule: cron::Schedule,
    shutdown: CancellationToken,
) {
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!("sweep schedule has no upcoming time; sweeps stop");
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match p.sweep().await {
            Ok(n) => tracing::info!(notified = n, "due-soon sweep done"),
            Err(e) => tracing::warn!(error = ?e, "due-soon sweep failed; next run retries"),
        }
    }
}

/// How often the overdue and active-user gauges are recounted.
const BUSINESS_GAUGES_EVERY: Duration = Duration::from_secs(15);

async fn business_gauges_loop(p: Arc<handler::Processor>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(BUSINESS_GAUGES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = p.refresh_business_gauges().await {
            tracing::debug!(error = %e, "business gauges not refreshed; next tick retries");
        }
    }
}
