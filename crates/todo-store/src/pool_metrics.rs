//! The PostgreSQL pool's gauges: connections open, idle and the bound, read
//! from sqlx (`size`, `num_idle`, `max_connections`) on a tick. sqlx counts
//! no waits; a pool with every connection in use is one whose callers wait.

use std::time::Duration;

use contracts::metrics as m;
use sqlx::PgPool;
use telemetry::metrics::{Gauge, MetricsRegistry};

#[derive(Clone)]
pub struct PoolMetrics {
    pub open: Gauge,
    pub idle: Gauge,
    pub max: Gauge,
}

impl PoolMetrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            open: r.gauge(&m::DB_POOL_CONNECTIONS),
            idle: r.gauge(&m::DB_POOL_IDLE),
            max: r.gauge(&m::DB_POOL_MAX),
        }
    }

    /// Sets the gauges from the pool's current counts.
    pub fn sample(&self, pool: &PgPool) {
        self.open.set(i64::from(pool.size()));
        self.idle.set(pool.num_idle() as i64);
        self.max
            .set(i64::from(pool.options().get_max_connections()));
    }

    /// Samples now and every `every` until the pool is closed.
    pub fn watch(self, pool: PgPool, every: Duration) {
        self.sample(&pool);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pool.is_closed() {
                tick.tick().await;
                self.sample(&pool);
            }
        });
    }
}

/// How often the services sample their pool.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gauges_follow_the_pool() {
        let mut r = MetricsRegistry::new("command-service", "stable");
        let metrics = PoolMetrics::register(&mut r);
        let pool = crate::connect_lazy("postgres://u:p@127.0.0.1:1/db", 7).expect("lazy pool");
        metrics.sample(&pool);
        assert_eq!(metrics.open.get(), 0, "a lazy pool opens nothing");
        assert_eq!(metrics.idle.get(), 0);
        assert_eq!(metrics.max.get(), 7);
        let text = r.finish().encode();
        for name in [
            "db_pool_connections",
            "db_pool_idle_connections",
            "db_pool_max_connections",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} gauge")),
                "{name}: {text}"
            );
        }
        assert!(
            text.contains(
                "db_pool_max_connections{service=\"command-service\",version=\"stable\"} 7"
            ),
            "{text}"
        );
    }
}
