//! `GET /openapi.json`: each service's hand-written OpenAPI document, embedded
//! at compile time. The documents are checked against the running services by
//! `tests/tests/schemathesis.rs`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The route serving `document` (a JSON text) at `/openapi.json`, outside
/// authentication and rate limits.
pub fn route<S: Clone + Send + Sync + 'static>(document: &'static str) -> axum::Router<S> {
    axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(move || async move { serve(document) }),
    )
}

fn serve(document: &'static str) -> Response {
    let mut resp = document.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The operations (`METHOD /path`) a document describes, for tests that
/// compare it with the router.
pub fn operations(document: &str) -> anyhow::Result<Vec<String>> {
    let doc: serde_json::Value = serde_json::from_str(document)?;
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_object())
        .ok_or_else(|| anyhow::anyhow!("the document has no 'paths' object"))?;
    let mut ops = vec![];
    for (path, item) in paths {
        let item = item
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("path {path} is not an object"))?;
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.contains_key(method) {
                ops.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    ops.sort();
    Ok(ops)
}
