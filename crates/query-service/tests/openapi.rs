//! The published OpenAPI document is valid JSON and describes exactly the
//! routes the router serves (schemathesis then checks every response against
//! it: tests/tests/schemathesis.rs).

#[test]
fn the_openapi_document_lists_every_route() -> anyhow::Result<()> {
    let ops = service_kit::openapi::operations(query_service::OPENAPI)?;
    assert_eq!(
        ops,
        [
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "GET /v1/admin/audit",
            "GET /v1/todos",
            "GET /v1/todos/{id}",
            "GET /v1/todos/{id}/history",
        ]
    );
    Ok(())
}
