//! The published OpenAPI document is valid JSON and describes exactly the
//! routes the router serves (schemathesis then checks every response against
//! it: tests/tests/schemathesis.rs).

#[test]
fn the_openapi_document_lists_every_route() -> anyhow::Result<()> {
    let ops = service_kit::openapi::operations(observer::api::OPENAPI)?;
    assert_eq!(
        ops,
        [
            "GET /",
            "GET /api/v1/alerts",
            "GET /api/v1/canaries",
            "GET /api/v1/canaries/{name}",
            "GET /api/v1/canaries/{name}/decisions",
            "GET /api/v1/lag",
            "GET /api/v1/report",
            "GET /api/v1/slos",
            "GET /canaries",
            "GET /healthz",
            "GET /lag",
            "GET /metrics",
            "GET /readyz",
            "GET /slo/{name}",
            "POST /api/v1/canaries/{name}/{action}",
        ]
    );
    Ok(())
}
