//! `command-service --check-config` on a good and a bad environment, and
//! start-up refusing the bad one: the binary as shipped, with nothing
//! running (the check needs no connection).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_command-service");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("runs the binary")
}

const GOOD: &[(&str, &str)] = &[
    (
        "COMMAND_DATABASE_URL",
        "postgres://todo:secret@db.internal:25060/todo?sslmode=require",
    ),
    ("COMMAND_KAFKA_BROKERS", "kafka-0:9092,kafka-1:9092"),
    ("COMMAND_LISTEN_ADDR", "0.0.0.0:8080"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
    ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
];

const BAD: &[(&str, &str)] = &[
    (
        "COMMAND_DATABASE_URL",
        "postgres://todo:secret@db.internal:25060/todo?sslmode=sometimes&sslrootcert=/nonexistent/ca.pem",
    ),
    ("COMMAND_KAFKA_BROKERS", "kafka-0"),
    ("COMMAND_TLS_CERT_FILE", "/nonexistent/tls.crt"),
    ("COMMAND_AUTH_MODE", "oidc"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ("OTEL_TRACES_SAMPLER", "sometimes"),
];

#[test]
fn a_good_environment_passes_with_a_one_line_summary() {
    let out = run(&["--check-config"], GOOD);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stdout}{stderr}",
        out.status
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("command-service: configuration OK: listen 0.0.0.0:8080"),
        "{stdout}"
    );
    // The password of the database URL is not printed.
    assert!(!stdout.contains("secret") && !stderr.contains("secret"));
}

#[test]
fn a_bad_environment_fails_listing_every_problem_by_its_variable() {
    let out = run(&["--check-config"], BAD);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "command-service: COMMAND_DATABASE_URL: sslmode 'sometimes'",
        "command-service: COMMAND_DATABASE_URL: sslrootcert: cannot read /nonexistent/ca.pem",
        "command-service: COMMAND_KAFKA_BROKERS: broker 'kafka-0': want host:port",
        "command-service: COMMAND_TLS_CERT_FILE: cannot read /nonexistent/tls.crt",
        "command-service: COMMAND_TLS_KEY_FILE: is required when COMMAND_TLS_CERT_FILE is set",
        "command-service: COMMAND_AUTH_MODE: oidc needs the auth_oidc table",
        "command-service: OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' is the OTLP/gRPC port",
        "command-service: OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc'",
        "command-service: OTEL_TRACES_SAMPLER: 'sometimes'",
        "command-service: configuration has 9 problem(s)",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(want)),
            "missing {want:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn a_missing_required_key_is_a_problem_too() {
    let out = run(&["--check-config"], &GOOD[1..]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("COMMAND_DATABASE_URL"), "{stderr}");
}

#[test]
fn start_up_refuses_the_same_problems_before_connecting() {
    let mut env = GOOD.to_vec();
    env.retain(|(k, _)| *k != "OTEL_TRACES_SAMPLER_ARG");
    env.push(("OTEL_TRACES_SAMPLER_ARG", "1.5"));
    let out = run(&[], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("configuration error")
            && stderr.contains("OTEL_TRACES_SAMPLER_ARG: '1.5' is not a probability"),
        "{stderr}"
    );
}
