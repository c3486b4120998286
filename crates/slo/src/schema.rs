//! The published JSON Schema of `slo/*.yaml` (docs/slo-spec.schema.json).
//! Structural only: semantic rules (bucket boundaries, tiers that can never
//! fire, duplicate names) are enforced by `validate` and documented in
//! docs/slo-spec.md. A test keeps it in step with the serde model by
//! validating every spec and fixture against it.

use serde_json::{Value, json};

const DURATION: &str = "^([0-9]+[smhdw])+$";

fn matchers() -> Value {
    json!({
        "type": "object",
        "description": "Label matchers: `value` (equal), `!=value`, `=~regex`, `!~regex`.",
        "propertyNames": { "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$" },
        "additionalProperties": { "type": "string" }
    })
}

pub fn schema() -> Value {
    let dur = json!({ "type": "string", "pattern": DURATION });
    let strings = json!({
        "type": "object",
        "propertyNames": { "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$" },
        "additionalProperties": { "type": "string" }
    });
    let alert_meta = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Labels added to the alert; annotations added to (or replacing) the generated ones.",
        "properties": { "name": { "type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$" }, "for": dur.clone(), "labels": strings.clone(), "annotations": strings }
    });
    let query = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "A counter selector (`metric` + `matchers`) or raw PromQL counting events over `$window`.",
        "properties": {
            "metric": { "type": "string" },
            "matchers": matchers(),
            "promql": { "type": "string", "pattern": "\\$window" }
        },
        "oneOf": [ { "required": ["metric"] }, { "required": ["promql"] } ]
    });
    let threshold = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["threshold_seconds"],
        "properties": {
            "metric": { "type": "string", "description": "Histogram family; defaults to the typed contract metric." },
            "threshold_seconds": { "type": "number", "exclusiveMinimum": 0, "description": "Must be a bucket boundary." },
            "matchers": matchers(),
            "buckets": { "type": "array", "items": { "type": "number" } }
        }
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://todo-observability.dev/schemas/slo-spec.schema.json",
        "title": "SLO spec (slo/*.yaml)",
        "description": "SLOs of one service. See docs/slo-spec.md.",
        "type": "object",
        "additionalProperties": false,
        "required": ["service", "slos"],
        "properties": {
            "service": { "type": "string", "pattern": "^[a-z][a-z0-9-]*$" },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "slos": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "objective", "window", "sli"],
                    "properties": {
                        "name": { "type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$" },
                        "description": { "type": "string" },
                        "objective": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                        "window": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "rolling": { "type": "string", "pattern": "^[0-9]+d$" },
                                "calendar": { "enum": ["week", "month"] },
                                "time_zone": { "type": "string" }
                            },
                            "oneOf": [ { "required": ["rolling"] }, { "required": ["calendar"] } ]
                        },
                        "budgeting": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["method"],
                            "properties": {
                                "method": { "enum": ["occurrences", "timeslices"] },
                                "slice": dur.clone(),
                                "slice_objective": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 }
                            }
                        },
                        "sli": {
                            "type": "object",
                            "additionalProperties": false,
                            "minProperties": 1,
                            "maxProperties": 1,
                            "properties": {
                                "ratio": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["total"],
                                    "properties": { "good": query.clone(), "bad": query.clone(), "total": query },
                                    "oneOf": [ { "required": ["good"] }, { "required": ["bad"] } ]
                                },
                                "availability": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "properties": { "matchers": matchers() }
                                },
                                "latency": threshold.clone(),
                                "freshness": threshold,
                                "consumer_lag": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["group", "topic", "max_lag_seconds"],
                                    "properties": {
                                        "group": { "type": "string", "minLength": 1 },
                                        "topic": { "type": "string", "minLength": 1 },
                                        "max_lag_seconds": { "type": "number", "exclusiveMinimum": 0 }
                                    }
                                },
                                "query_threshold": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["promql", "good_when", "value"],
                                    "properties": {
                                        "promql": { "type": "string" },
                                        "good_when": { "enum": ["below", "at_or_below", "above", "at_or_above"] },
                                        "value": { "type": "number" }
                                    }
                                }
                            }
                        },
                        "alerting": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "tiers": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": false,
                                        "required": ["severity", "factor", "long", "short"],
                                        "properties": {
                                            "severity": { "enum": ["page", "ticket"] },
                                            "factor": { "type": "number", "exclusiveMinimum": 0 },
                                            "long": dur.clone(),
                                            "short": dur.clone(),
                                            "for": dur.clone()
                                        }
                                    }
                                },
                                "min_events": { "type": "integer", "minimum": 0 },
                                "no_data": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "properties": { "for": dur, "severity": { "enum": ["page", "ticket"] } }
                                },
                                "page_alert": alert_meta.clone(),
                                "ticket_alert": alert_meta
                            }
                        }
                    }
                }
            }
        }
    })
}

pub fn schema_json() -> Result<String, crate::Error> {
    serde_json::to_string_pretty(&schema())
        .map(|s| s + "\n")
        .map_err(|e| crate::Error::Internal(e.to_string()))
}
