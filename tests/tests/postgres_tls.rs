//! PostgreSQL over TLS, as deployments reach their managed database: the
//! server has `ssl=on` with a certificate for `localhost` signed by a test
//! CA and admits TCP clients over TLS only (`hostssl`). The command service,
//! the query service, the event processor and the observer run as processes
//! with `sslmode=verify-full&sslrootcert=<CA>` in their database URL, and a
//! write reaches the read side. Without sqlx's TLS support no connection to
//! this server can be made, so the stack does not even start.

use anyhow::Context as _;
use devstack::postgres::{Options, TlsOptions};
use serde_json::json;
use system_tests::{Api, Service, Stack};

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    <sqlx::PgConnection as sqlx::Connection>::connect(url).await
}

#[tokio::test]
async fn services_reach_postgres_over_verified_tls_and_plain_connections_are_refused()
-> anyhow::Result<()> {
    let logs = tempfile::Builder::new().prefix("todo-logs-").tempdir()?;
    let stack = Stack::start_with(
        Options {
            tls: Some(TlsOptions {
                host: "localhost".into(),
            }),
            ..Options::for_tests()
        },
        None,
        logs.path().to_path_buf(),
        Some(logs),
    )
    .await
    .context("starting postgres (TLS only) and the broker")?;
    let url = stack.wiring.database_url.clone();
    assert!(
        url.starts_with("postgres://postgres@localhost:") && url.contains("sslmode=verify-full"),
        "{url}"
    );
    let port = stack.postgres.port();
    let ca = stack
        .postgres
        .ca_file()
        .context("TLS mode has a CA")?
        .display()
        .to_string();

    // Plain TCP is refused by pg_hba.conf, even with the right user.
    let err = connect(&format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=disable"
    ))
    .await
    .expect_err("a plain connection must be refused")
    .to_string();
    assert!(err.contains("no encryption"), "{err}");
    // verify-full checks the name: the certificate is for localhost only.
    let err = connect(&format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    ))
    .await
    .expect_err("the IP address is not in the certificate")
    .to_string();
    assert!(err.to_lowercase().contains("tls"), "{err}");
    // ...and the CA: a certificate the server's was not signed by is no root.
    let other_ca = tempfile::NamedTempFile::new()?;
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    std::fs::write(other_ca.path(), service_kit::tls::self_signed_cert(&key)?)?;
    let err = connect(&format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        other_ca.path().display()
    ))
    .await
    .expect_err("an unrelated CA must not verify the server")
    .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The services, as processes, with the verify-full URL.
    let (command, query) = tokio::try_join!(
        stack.spawn(Service::Command, &[]),
        stack.spawn(Service::Query, &[])
    )?;
    let _processor = stack.spawn(Service::Processor, &[]).await?;
    // The observer's canary controller keeps its decision log in Postgres:
    // with a canary dir it connects and migrates at start, or exits.
    let prom =
        devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions::default())
            .await?;
    let specs = tempfile::Builder::new().prefix("canary-specs-").tempdir()?;
    let oport = devstack::free_port()?;
    let oenv: Vec<(String, String)> = [
        ("OBSERVER_LISTEN_ADDR", format!("127.0.0.1:{oport}")),
        ("OBSERVER_PROMETHEUS_URL", prom.url()),
        ("OBSERVER_CANARY_DIR", specs.path().display().to_string()),
        ("OBSERVER_DATABASE_URL", url.clone()),
        ("OBSERVER_AUTH_MODE", "dev".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let _observer =
        devstack::ServiceProcess::spawn("observer", oport, &oenv, stack.log_dir()).await?;

    // A write reaches the read side.
    let api = Api::new(&command, &query);
    let r = api.create("tls-db", json!({"title": "over TLS"})).await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().context("id")?.to_string();
    let seen = api.wait_version("tls-db", &id, 1).await?;
    assert_eq!(seen.body["title"], "over TLS");

    // Every client connection to the platform's database is TLS, from each
    // component's tables being in use.
    let mut admin = connect(&url).await?;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut admin)
        .await?;
    let (tls, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = $1 AND a.backend_type = 'client backend'",
    )
    .bind(&db)
    .fetch_one(&mut admin)
    .await?;
    assert_eq!(plain, 0, "no plain connections to {db}");
    assert!(tls >= 4, "the services hold TLS connections to {db}: {tls}");
    let observer_tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'canary_decisions'")
            .fetch_one(&mut admin)
            .await?;
    assert_eq!(observer_tables, 1, "the observer migrated over TLS");
    Ok(())
}
