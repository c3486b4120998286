//! The Gateway API rollout driver against recorded API exchanges: no
//! Kubernetes API server can run on the test machine, so a local stand-in
//! serves the real `todo-api` HTTPRoute from `k8s/base/gateway.yaml` and a
//! `deployments/scale` object, applies the driver's JSON Patch (RFC 6902)
//! and merge patch (RFC 7386) the way the API server does, and records every
//! request. The test checks the calls equal
//! `tests/fixtures/gateway-api/rollout-exchanges.json`, that each is a verb
//! the observer's Role grants, and that the patched route still validates
//! against the vendored Gateway API CRD schema. Like the API server, the
//! stand-in accepts only the current bearer token: the test rotates the
//! token file mid-rollout, as the kubelet does with projected service
//! account tokens, and the driver's next calls carry the new token.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use rollout::{BearerToken, GatewayApiConfig, GatewayApiDriver, RolloutDriver};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/todo/httproutes/todo-api";
const SCALE: &str = "/apis/apps/v1/namespaces/todo/deployments/command-service-canary/scale";
/// Blue's Deployment in the blue-green test.
const BLUE_SCALE: &str = "/apis/apps/v1/namespaces/todo/deployments/command-service/scale";

#[derive(Default)]
struct Api {
    route: Value,
    scale: Value,
    blue_scale: Value,
    log: Vec<Value>,
    /// The one token the API server accepts (an old one has expired).
    token: String,
    /// Rename the stable backend after the next GET (a concurrent edit).
    edit_after_get: bool,
}

type Shared = Arc<Mutex<Api>>;

fn status(code: StatusCode, message: &str) -> axum::response::Response {
    (
        code,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code.as_u16()})),
    )
        .into_response()
}

/// RFC 6902 `test`, `add` and `replace` on a JSON document.
fn json_patch(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    let mut next = doc.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("op without path")?;
        match op["op"].as_str() {
            Some("test") => {
                if next.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some("add") | Some("replace") => {
                let (parent, key) = path.rsplit_once('/').ok_or("bad path")?;
                let target = next
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .ok_or(format!("no object at {parent}"))?;
                if op["op"] == "replace" && !target.contains_key(key) {
                    return Err(format!("replace of missing {path}"));
                }
                target.insert(key.to_string(), op["value"].clone());
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    *doc = next;
    Ok(())
}

/// RFC 7386 merge patch.
fn merge_patch(doc: &mut Value, patch: &Value) {
    match (doc.as_object_mut(), patch.as_object()) {
        (Some(d), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    d.remove(k);
                } else {
                    merge_patch(d.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *doc = patch.clone(),
    }
}

async fn api(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let mut api = s.lock().expect("lock");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut entry = json!({"method": method.as_str(), "path": uri.path()});
    if let Some(ct) = &ct {
        entry["content_type"] = json!(ct);
        entry["body"] = body.clone();
    }
    entry["authorization"] = json!(headers.get("authorization").and_then(|v| v.to_str().ok()));
    api.log.push(entry);
    let expected = format!("Bearer {}", api.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let bump = |v: &mut Value| {
        let rv: u64 = v["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        v["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    };
    match (method.as_str(), uri.path(), ct.as_deref()) {
        ("GET", ROUTE, _) => {
            let out = api.route.clone();
            if api.edit_after_get {
                api.edit_after_get = false;
                api.route["spec"]["rules"][1]["backendRefs"][0]["name"] = json!("someone-else");
            }
            axum::Json(out).into_response()
        }
        ("PATCH", ROUTE, Some("application/json-patch+json")) => {
            let ops = body.as_array().cloned().unwrap_or_default();
            match json_patch(&mut api.route, &ops) {
                Ok(()) => {
                    bump(&mut api.route);
                    axum::Json(api.route.clone()).into_response()
                }
                Err(e) => status(StatusCode::UNPROCESSABLE_ENTITY, &e),
            }
        }
        ("GET", SCALE, _) => axum::Json(api.scale.clone()).into_response(),
        ("PATCH", SCALE, Some("application/merge-patch+json")) => {
            merge_patch(&mut api.scale, &body);
            bump(&mut api.scale);
            axum::Json(api.scale.clone()).into_response()
        }
        ("GET", BLUE_SCALE, _) if !api.blue_scale.is_null() => {
            axum::Json(api.blue_scale.clone()).into_response()
        }
        ("PATCH", BLUE_SCALE, Some("application/merge-patch+json"))
            if !api.blue_scale.is_null() =>
        {
            merge_patch(&mut api.blue_scale, &body);
            bump(&mut api.blue_scale);
            axum::Json(api.blue_scale.clone()).into_response()
        }
        (_, ROUTE | SCALE, _) => status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported"),
        (_, path, _) => status(StatusCode::NOT_FOUND, &format!("{path} not found")),
    }
}

/// The `todo-api` HTTPRoute as deployed (from the kustomize base).
fn todo_api_route() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("k8s/base/gateway.yaml"))?;
    for doc in text.split("\n---") {
        let v: Value = serde_norway::from_str(doc)?;
        if v["kind"] == "HTTPRoute" && v["metadata"]["name"] == "todo-api" {
            let mut v = v;
            v["metadata"]["resourceVersion"] = json!("1");
            return Ok(v);
        }
    }
    anyhow::bail!("no HTTPRoute todo-api in k8s/base/gateway.yaml")
}

/// The `v1` openAPIV3Schema of the vendored HTTPRoute CRD.
fn httproute_schema() -> anyhow::Result<jsonschema::Validator> {
    let dir = std::env::var_os("TODO_SCHEMAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/schemas"));
    let file = dir.join("gateway-api/gateway.networking.k8s.io_httproutes.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (the vendored CRD schemas; set TODO_SCHEMAS_DIR)",
            file.display()
        )
    })?;
    let crd: Value = serde_norway::from_str(&text)?;
    let schema = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "v1"))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .ok_or_else(|| anyhow::anyhow!("no v1 schema in {}", file.display()))?;
    jsonschema::validator_for(&schema).map_err(|e| anyhow::anyhow!("CRD schema: {e}"))
}

/// The observer's Role: (resource path suffix, verbs).
fn granted(method: &str, path: &str) -> bool {
    let verb = match method {
        "GET" => "get",
        "PATCH" => "patch",
        other => return other.is_empty(),
    };
    let text = std::fs::read_to_string(repo_root().join("k8s/base/rbac-observer.yaml"))
        .unwrap_or_default();
    let role: Value = text
        .split("\n---")
        .filter_map(|d| serde_norway::from_str::<Value>(d).ok())
        .find(|v| v["kind"] == "Role")
        .unwrap_or(Value::Null);
    let resource = if path.ends_with("/scale") {
        "deployments/scale"
    } else if path.contains("/httproutes/") {
        "httproutes"
    } else {
        return false;
    };
    role["rules"].as_array().into_iter().flatten().any(|r| {
        r["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|x| x == resource))
            && r["verbs"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v == verb))
    })
}

async fn stand_in(route: Value, token: &str) -> anyhow::Result<(String, Shared)> {
    let shared: Shared = Arc::new(Mutex::new(Api {
        route,
        token: token.to_string(),
        scale: json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "command-service-canary", "namespace": "todo", "resourceVersion": "7"},
            "spec": {"replicas": 0}, "status": {"replicas": 0}
        }),
        ..Api::default()
    }));
    let app = axum::Router::new().fallback(api).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, shared))
}

fn driver(url: &str, route: &str, token: BearerToken) -> anyhow::Result<GatewayApiDriver> {
    Ok(GatewayApiDriver::new(GatewayApiConfig {
        api_server: url.to_string(),
        token: Some(token),
        ca_pem: None,
        namespace: "todo".into(),
        http_route: route.into(),
        stable_service: "command-service-stable".into(),
        canary_service: "command-service-canary".into(),
        canary_deployment: "command-service-canary".into(),
        canary_replicas: 2,
        stable_deployment: None,
        stable_replicas: 1,
        scale_with_weight: true,
        timeout: Duration::from_secs(5),
    })?)
}

#[tokio::test]
async fn gateway_api_driver_moves_httproute_weights_and_scales_the_canary() -> anyhow::Result<()> {
    let schema = httproute_schema()?;
    let route = todo_api_route()?;
    assert!(schema.is_valid(&route), "the base manifest validates");
    let (url, api) = stand_in(route, "sa-token-1").await?;
    // The projected service account token, as mounted in the pod.
    let sa = tempfile::tempdir()?;
    let token_file = sa.path().join("token");
    std::fs::write(&token_file, "sa-token-1\n")?;
    let d = driver(&url, "todo-api", BearerToken::File(token_file.clone()))?;

    assert_eq!(d.canary_percent().await?, 0, "the base route starts at 0%");
    api.lock().expect("lock").log.clear();
    d.set_canary_percent(20).await?;
    let calls_so_far = api.lock().expect("lock").log.len();
    assert_eq!(d.canary_percent().await?, 20);
    assert_eq!(api.lock().expect("lock").scale["spec"]["replicas"], 2);
    // canary_percent() is a read; keep the transcript to the writes' calls.
    api.lock().expect("lock").log.truncate(calls_so_far);
    // The kubelet rotates the token (a new file swapped in) and the old one
    // stops being accepted: the next steps must present the new one.
    let next = sa.path().join("token.new");
    std::fs::write(&next, "sa-token-2\n")?;
    std::fs::rename(&next, &token_file)?;
    api.lock().expect("lock").token = "sa-token-2".into();
    d.set_canary_percent(50).await?;
    d.rollback().await?;

    let (log, route, scale) = {
        let a = api.lock().expect("lock");
        (a.log.clone(), a.route.clone(), a.scale.clone())
    };
    // The calls are the recorded ones (minus the canary_percent() reads).
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("tests/fixtures/gateway-api/rollout-exchanges.json"),
    )?)?;
    let expected = fixture["requests"].as_array().cloned().unwrap_or_default();
    let calls: Vec<Value> = log
        .iter()
        .map(|e| {
            let mut c = e.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("authorization");
            }
            c
        })
        .collect();
    assert_eq!(calls.len(), expected.len(), "{calls:#?}");
    for (i, (got, want)) in calls.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "exchange {i}");
    }
    for (i, e) in log.iter().enumerate() {
        let token = if i < calls_so_far {
            "Bearer sa-token-1"
        } else {
            "Bearer sa-token-2"
        };
        assert_eq!(e["authorization"], token, "exchange {i}");
        let (m, p) = (
            e["method"].as_str().unwrap_or(""),
            e["path"].as_str().unwrap_or(""),
        );
        assert!(
            granted(m, p),
            "{m} {p} is not granted by k8s/base/rbac-observer.yaml"
        );
    }

    // After rollback: stable 100, canary 0, canary scaled to zero, and the
    // route is still a valid HTTPRoute.
    let refs = &route["spec"]["rules"][1]["backendRefs"];
    assert_eq!(refs[0]["weight"], 100);
    assert_eq!(refs[1]["weight"], 0);
    assert_eq!(scale["spec"]["replicas"], 0);
    let errors: Vec<String> = schema.iter_errors(&route).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "patched route invalid: {errors:?}");
    // The read-only rule to query-service is untouched.
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"name": "query-service", "port": 8080}])
    );

    // Idempotent: a second rollback changes nothing.
    d.rollback().await?;
    let again = api.lock().expect("lock").route.clone();
    assert_eq!(again["spec"], route["spec"]);
    Ok(())
}

#[tokio::test]
async fn gateway_api_driver_refuses_rather_than_guess() -> anyhow::Result<()> {
    let token = || BearerToken::Fixed("sa-token".into());
    let (url, api) = stand_in(todo_api_route()?, "sa-token").await?;
    // A route edited between the driver's read and its write: the `test`
    // operations make the API server refuse the patch.
    api.lock().expect("lock").edit_after_get = true;
    let err = driver(&url, "todo-api", token())?
        .set_canary_percent(10)
        .await
        .expect_err("concurrent edit")
        .to_string();
    assert!(err.contains("422") && err.contains("test failed"), "{err}");
    let refs = api.lock().expect("lock").route["spec"]["rules"][1]["backendRefs"].clone();
    assert_eq!(refs[1]["weight"], 0, "no weight was written");

    // Unknown route: the API server's message comes through.
    let err = driver(&url, "no-such-route", token())?
        .set_canary_percent(10)
        .await
        .expect_err("404")
        .to_string();
    assert!(
        err.contains("404") && err.contains("no-such-route"),
        "{err}"
    );

    // A route without both backends.
    let mut route = todo_api_route()?;
    route["spec"]["rules"][1]["backendRefs"] =
        json!([{"name": "command-service-stable", "port": 8080}]);
    let (url, _) = stand_in(route, "sa-token").await?;
    let err = driver(&url, "todo-api", token())?
        .canary_percent()
        .await
        .expect_err("no canary backend")
        .to_string();
    assert!(err.contains("command-service-canary"), "{err}");

    // Unreachable API server.
    let port = devstack::free_port()?;
    let err = driver(&format!("http://127.0.0.1:{port}"), "todo-api", token())?
        .rollback()
        .await
        .expect_err("unreachable")
        .to_string();
    assert!(err.contains("cannot reach"), "{err}");

    // A wrong token: the API server's 401 comes through.
    let (url, _) = stand_in(todo_api_route()?, "sa-token").await?;
    let err = driver(&url, "todo-api", BearerToken::Fixed("expired".into()))?
        .canary_percent()
        .await
        .expect_err("401")
        .to_string();
    assert!(err.contains("401"), "{err}");
    // A token file that cannot be read is named in the error.
    let missing = tempfile::tempdir()?.path().join("token");
    let err = driver(&url, "todo-api", BearerToken::File(missing.clone()))?
        .canary_percent()
        .await
        .expect_err("no token file")
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    Ok(())
}

/// Blue-green on the Gateway API: green keeps its replicas at 0% (it serves
/// the preview route), the switch is one JSON Patch whose `test` ops pin
/// both backends, blue's Deployment is scaled to 0 afterwards, and every
/// call repeated (a retry, or a restarted observer with a new driver) writes
/// nothing more.
#[tokio::test]
async fn gateway_api_blue_green_switch_is_one_tested_patch_then_blue_scales_down()
-> anyhow::Result<()> {
    use rollout::Side;
    let schema = httproute_schema()?;
    let preview: Value = serde_norway::from_str(&std::fs::read_to_string(
        repo_root().join("k8s/base/canary/examples/routes/todo-api-preview.yaml"),
    )?)?;
    assert!(
        schema.is_valid(&preview),
        "the example preview route validates"
    );
    let (url, api) = stand_in(todo_api_route()?, "t").await?;
    api.lock().expect("lock").blue_scale = json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "command-service", "namespace": "todo", "resourceVersion": "3"},
        "spec": {"replicas": 2}, "status": {"replicas": 2}
    });
    let bg = |url: &str| {
        GatewayApiDriver::new(GatewayApiConfig {
            api_server: url.to_string(),
            token: Some(BearerToken::Fixed("t".into())),
            ca_pem: None,
            namespace: "todo".into(),
            http_route: "todo-api".into(),
            stable_service: "command-service-stable".into(),
            canary_service: "command-service-canary".into(),
            canary_deployment: "command-service-canary".into(),
            canary_replicas: 2,
            stable_deployment: Some("command-service".into()),
            stable_replicas: 2,
            scale_with_weight: false,
            timeout: Duration::from_secs(5),
        })
    };
    let d = bg(&url)?;
    // Start: green up for the preview, users stay on blue.
    d.scale_up(Side::Canary).await?;
    d.set_canary_percent(0).await?;
    assert_eq!(api.lock().expect("lock").scale["spec"]["replicas"], 2);
    assert_eq!(d.canary_percent().await?, 0);

    let writes = |api: &Shared| {
        api.lock()
            .expect("lock")
            .log
            .iter()
            .filter(|e| e["method"] == "PATCH")
            .cloned()
            .collect::<Vec<Value>>()
    };
    let before = writes(&api).len();
    d.set_canary_percent(100).await?;
    let switch: Vec<Value> = writes(&api)[before..].to_vec();
    assert_eq!(switch.len(), 1, "the switch is one write: {switch:#?}");
    assert_eq!(switch[0]["path"], ROUTE);
    let ops = switch[0]["body"].as_array().cloned().unwrap_or_default();
    for name in ["command-service-stable", "command-service-canary"] {
        assert!(
            ops.iter().any(|o| o["op"] == "test" && o["value"] == name),
            "no test op pinning {name}: {ops:#?}"
        );
    }
    assert_eq!(d.canary_percent().await?, 100);
    let route = api.lock().expect("lock").route.clone();
    assert!(schema.is_valid(&route), "the switched route validates");
    // Green keeps its replicas, blue too until it is scaled down.
    assert_eq!(api.lock().expect("lock").scale["spec"]["replicas"], 2);
    assert_eq!(api.lock().expect("lock").blue_scale["spec"]["replicas"], 2);

    d.scale_down(Side::Stable).await?;
    assert_eq!(api.lock().expect("lock").blue_scale["spec"]["replicas"], 0);
    // Retries and a restarted observer's fresh driver: no further writes of
    // the scale (the route patch is re-sent with the same weights).
    let n = writes(&api).len();
    d.scale_down(Side::Stable).await?;
    let again = bg(&url)?;
    again.scale_down(Side::Stable).await?;
    again.set_canary_percent(100).await?;
    let more = writes(&api)[n..].to_vec();
    assert!(more.iter().all(|w| w["path"] == ROUTE), "{more:#?}");
    let mut now = api.lock().expect("lock").route.clone();
    now["metadata"]["resourceVersion"] = route["metadata"]["resourceVersion"].clone();
    assert_eq!(now, route, "repeating the switch changed the route");
    // Every call is a verb the observer's Role grants.
    for e in api.lock().expect("lock").log.iter() {
        assert!(
            granted(
                e["method"].as_str().unwrap_or(""),
                e["path"].as_str().unwrap_or("")
            ),
            "not granted: {e}"
        );
    }
    // A rollback after blue's scale-down gives blue its replicas back first.
    again.scale_up(Side::Stable).await?;
    again.set_canary_percent(0).await?;
    assert_eq!(api.lock().expect("lock").blue_scale["spec"]["replicas"], 2);
    assert_eq!(again.canary_percent().await?, 0);
    Ok(())
}
