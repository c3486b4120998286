//! The whole platform as processes: PostgreSQL, the broker, and the three
//! services, wired together with environment variables.

use std::path::{Path, PathBuf};

use crate::{Broker, Postgres, ServiceProcess, free_port};

/// Which service, with its binary name and config prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Command,
    Query,
    Processor,
}

impl Service {
    pub fn binary(self) -> &'static str {
        match self {
            Service::Command => "command-service",
            Service::Query => "query-service",
            Service::Processor => "event-processor",
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Command => "COMMAND",
            Service::Query => "QUERY",
            Service::Processor => "PROCESSOR",
        }
    }
}

/// Everything the services need to find Postgres and the broker.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub database_url: String,
    pub brokers: String,
    pub log_dir: PathBuf,
    /// Extra environment for every service (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub common_env: Vec<(String, String)>,
}

impl Wiring {
    /// Environment for `service` on `port`, plus `extra` (`KEY` without prefix).
    pub fn env(
        &self,
        service: Service,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let p = service.prefix();
        let mut env = vec![
            (format!("{p}_LISTEN_ADDR"), format!("127.0.0.1:{port}")),
            (format!("{p}_DATABASE_URL"), self.database_url.clone()),
            (format!("{p}_KAFKA_BROKERS"), self.brokers.clone()),
        ];
        if service != Service::Processor {
            env.push((format!("{p}_AUTH_MODE"), "dev".into()));
        }
        for (k, v) in extra {
            env.push((format!("{p}_{k}"), (*v).to_string()));
        }
        env.extend(self.common_env.iter().cloned());
        env
    }

    pub async fn spawn(
        &self,
        service: Service,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<ServiceProcess> {
        self.spawn_on(service, free_port()?, extra).await
    }

    pub async fn spawn_on(
        &self,
        service: Service,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::spawn(
            service.binary(),
            port,
            &self.env(service, port, extra),
            &self.log_dir,
        )
        .await
    }
}

/// Postgres + broker + a database for the platform, with service helpers.
pub struct Stack {
    pub postgres: Postgres,
    pub broker: Broker,
    pub wiring: Wiring,
    _logs: Option<tempfile::TempDir>,
}

impl Stack {
    /// Fresh infrastructure in temp dirs, one database, all topics.
    pub async fn start() -> anyhow::Result<Self> {
        let logs = tempfile::Builder::new().prefix("todo-logs-").tempdir()?;
        let log_dir = logs.path().to_path_buf();
        Self::start_with(
            crate::postgres::Options::for_tests(),
            None,
            log_dir,
            Some(logs),
        )
        .await
    }

    pub async fn start_with(
        pg: crate::postgres::Options,
        broker_port: Option<u16>,
        log_dir: PathBuf,
        logs: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Self> {
        let (postgres, broker) =
            tokio::try_join!(Postgres::start(pg), Broker::start_on(broker_port))?;
        broker.create_topics(contracts::topics::ALL).await?;
        let database_url = postgres.create_database("todo").await?;
        let wiring = Wiring {
            database_url,
            brokers: broker.brokers(),
            log_dir,
            common_env: vec![],
        };
        Ok(Self {
            postgres,
            broker,
            wiring,
            _logs: logs,
        })
    }

    pub fn log_dir(&self) -> &Path {
        &self.wiring.log_dir
    }

    pub async fn spawn(
        &self,
        service: Service,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<ServiceProcess> {
        self.wiring.spawn(service, extra).await
    }

    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.wiring.database_url)
            .await?)
    }
}
