//! The start-up the three todo services share, in one place: connect to
//! PostgreSQL and run the service's migrations, the Kafka client settings
//! and a producer, the bound listener ([`ServerBuilder`]) with the pool's
//! gauges in its registry, and the default readiness (a Postgres ping and
//! the broker's reachability).
//!
//! ```text
//! let p = Platform::start(SERVICE, "QUERY", &config.listen, &config.platform,
//!                         &[Component::Query], |k| k.session_timeout_ms = 6000).await?;
//! let metrics = Metrics::register(p.server.metrics());
//! let readiness = p.readiness();
//! let server = p.server.build(api, readiness, Some(OPENAPI));
//! ```

use anyhow::Context as _;
use bus::rdkafka::producer::FutureProducer;
use todo_store::PgPool;
use todo_store::migrate::Component;

use crate::common::{ListenConfig, PlatformConfig};
use crate::health::Readiness;
use crate::server::ServerBuilder;

/// What a todo service has once it is connected and bound.
pub struct Platform {
    /// Migrated for the components asked for.
    pub pool: PgPool,
    /// Client id `<service>-<version>`; consumers are created from it later.
    pub kafka: bus::KafkaSettings,
    pub producer: FutureProducer,
    /// Bound; the service adds its metric sets, then builds its router.
    pub server: ServerBuilder,
}

impl Platform {
    /// Connect and migrate (`components`), make the Kafka settings (`tune`
    /// sets the service's own producer and consumer options before the
    /// producer is created), bind the listener, and register the pool's
    /// gauges. `prefix` names the TLS variables in errors (`COMMAND`, …).
    pub async fn start<D>(
        service: &str,
        prefix: &str,
        listen: &ListenConfig<D>,
        platform: &PlatformConfig<D>,
        components: &[Component],
        tune: impl FnOnce(&mut bus::KafkaSettings),
    ) -> anyhow::Result<Self> {
        let pool = todo_store::connect_and_migrate(
            &platform.database_url,
            platform.db_max_connections,
            components,
        )
        .await?;
        let mut kafka = bus::KafkaSettings::new(
            platform.kafka_brokers.clone(),
            format!("{service}-{}", platform.version),
        );
        kafka.fetch_wait_max_ms = platform.kafka_fetch_wait_max_ms;
        tune(&mut kafka);
        let producer = kafka
            .producer()
            .context("creating Kafka producer (kafka_brokers)")?;
        let mut server = ServerBuilder::bind(service, &platform.version, prefix, listen).await?;
        todo_store::PoolMetrics::register(server.metrics())
            .watch(pool.clone(), todo_store::pool_metrics::SAMPLE_EVERY);
        Ok(Self {
            pool,
            kafka,
            producer,
            server,
        })
    }

    /// Ready when Postgres answers a ping and the broker is reachable. (The
    /// command service builds its own: its ping goes through the writes'
    /// breaker.)
    pub fn readiness(&self) -> Readiness {
        let (pool, producer) = (self.pool.clone(), self.producer.clone());
        Readiness::new()
            .check("postgres", move || todo_store::ready(pool.clone()))
            .check("kafka", move || bus::broker_reachable(producer.clone()))
    }
}
