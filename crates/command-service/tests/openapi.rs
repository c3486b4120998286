//! The published OpenAPI document is valid JSON and describes exactly the
//! routes the router serves (schemathesis then checks every response against
//! it: tests/tests/schemathesis.rs).

#[test]
fn the_openapi_document_lists_every_route() -> anyhow::Result<()> {
    let ops = service_kit::openapi::operations(command_service::OPENAPI)?;
    assert_eq!(
        ops,
        [
            "DELETE /v1/todos/{id}",
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "PATCH /v1/todos/{id}",
            "POST /v1/todos",
            "POST /v1/todos/{id}/complete",
            "POST /v1/todos/{id}/reopen",
        ]
    );
    Ok(())
}
