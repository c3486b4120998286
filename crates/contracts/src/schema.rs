//! Validation of records against the versioned JSON Schemas in `schemas/`.
//! Producers validate before they send and consumers validate before they
//! decode, so a hand-written record (say, from kcat) can never reach a
//! projection: it fails here and goes to the DLQ.

use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{NotificationEvent, TodoEvent, UserEvent};

pub const TODO_EVENT_V1: &str = include_str!("../schemas/todo-event.v1.schema.json");
pub const NOTIFICATION_EVENT_V1: &str =
    include_str!("../schemas/notification-event.v1.schema.json");
pub const USER_EVENT_V1: &str = include_str!("../schemas/user-event.v1.schema.json");

/// Why a record could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("record is not JSON: {0}")]
    NotJson(String),
    #[error("record has unsupported schema_version {0}")]
    UnsupportedVersion(String),
    #[error("record violates {schema} at '{path}': {message}")]
    Invalid {
        schema: &'static str,
        path: String,
        message: String,
    },
    #[error("record matches the schema but not the type: {0}")]
    Mismatch(String),
}

/// A schema this build knows, with its compiled validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    TodoEventV1,
    NotificationEventV1,
    UserEventV1,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::TodoEventV1 => "todo-event.v1",
            Schema::NotificationEventV1 => "notification-event.v1",
            Schema::UserEventV1 => "user-event.v1",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Schema::TodoEventV1 => TODO_EVENT_V1,
            Schema::NotificationEventV1 => NOTIFICATION_EVENT_V1,
            Schema::UserEventV1 => USER_EVENT_V1,
        }
    }

    fn validator(self) -> &'static jsonschema::Validator {
        static TODO: OnceLock<jsonschema::Validator> = OnceLock::new();
        static NOTIFICATION: OnceLock<jsonschema::Validator> = OnceLock::new();
        static USER: OnceLock<jsonschema::Validator> = OnceLock::new();
        let cell = match self {
            Schema::TodoEventV1 => &TODO,
            Schema::NotificationEventV1 => &NOTIFICATION,
            Schema::UserEventV1 => &USER,
        };
        cell.get_or_init(|| {
            // The schemas are compiled into the binary and covered by the unit
            // tests below, so a broken schema cannot ship.
            #[allow(clippy::expect_used)]
            let schema: serde_json::Value =
                serde_json::from_str(self.source()).expect("embedded schema is valid JSON");
            #[allow(clippy::expect_used)]
            jsonschema::validator_for(&schema).expect("embedded schema compiles")
        })
    }

    /// Validate a JSON value against this schema; the first violation wins.
    pub fn validate(self, value: &serde_json::Value) -> Result<(), SchemaError> {
        match self.validator().iter_errors(value).next() {
            None => Ok(()),
            Some(err) => Err(SchemaError::Invalid {
                schema: self.name(),
                path: err.instance_path().to_string(),
                message: err.to_string(),
            }),
        }
    }

    fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, SchemaError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(1) => {}
            other => {
                return Err(SchemaError::UnsupportedVersion(
                    other
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "missing".into()),
                ));
            }
        }
        self.validate(&value)?;
        serde_json::from_value(value).map_err(|e| SchemaError::Mismatch(e.to_string()))
    }

    fn encode<T: Serialize>(self, record: &T) -> Result<Vec<u8>, SchemaError> {
        let value =
            serde_json::to_value(record).map_err(|e| SchemaError::Mismatch(e.to_string()))?;
        self.validate(&value)?;
        serde_json::to_vec(&value).map_err(|e| SchemaError::Mismatch(e.to_string()))
    }
}

pub fn decode_todo_event(bytes: &[u8]) -> Result<TodoEvent, SchemaError> {
    Schema::TodoEventV1.decode(bytes)
}

pub fn encode_todo_event(ev: &TodoEvent) -> Result<Vec<u8>, SchemaError> {
    Schema::TodoEventV1.encode(ev)
}

pub fn decode_notification_event(bytes: &[u8]) -> Result<NotificationEvent, SchemaError> {
    Schema::NotificationEventV1.decode(bytes)
}

pub fn encode_notification_event(ev: &NotificationEvent) -> Result<Vec<u8>, SchemaError> {
    Schema::NotificationEventV1.encode(ev)
}

pub fn decode_user_event(bytes: &[u8]) -> Result<UserEvent, SchemaError> {
    Schema::UserEventV1.decode(bytes)
}

pub fn encode_user_event(ev: &UserEvent) -> Result<Vec<u8>, SchemaError> {
    Schema::UserEventV1.encode(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Priority, TodoCreated, TodoEventData};

    fn created() -> TodoEvent {
        TodoEvent {
            event_id: uuid::Uuid::new_v4(),
            schema_version: 1,
            occurred_at: chrono::Utc::now(),
            user_id: "alice".into(),
            todo_id: uuid::Uuid::new_v4(),
            stream_version: 1,
            trace: None,
            data: TodoEventData::Created(TodoCreated {
                title: "Write the runbook".into(),
                description: String::new(),
                priority: Priority::High,
                due_date: None,
                tags: vec!["ops".into()],
            }),
        }
    }

    #[test]
    fn every_schema_compiles() {
        for s in [
            Schema::TodoEventV1,
            Schema::NotificationEventV1,
            Schema::UserEventV1,
        ] {
            let _ = s.validator();
        }
    }

    #[test]
    fn valid_event_round_trips() {
        let ev = created();
        let bytes = encode_todo_event(&ev).expect("valid");
        assert_eq!(decode_todo_event(&bytes).expect("decodes"), ev);
    }

    #[test]
    fn rejects_hand_written_garbage() {
        assert!(matches!(
            decode_todo_event(b"hello"),
            Err(SchemaError::NotJson(_))
        ));
        assert!(matches!(
            decode_todo_event(b"{}"),
            Err(SchemaError::UnsupportedVersion(_))
        ));
        let mut v = serde_json::to_value(created()).expect("json");
        v["data"]["tags"] = serde_json::json!(["NOT VALID"]);
        let err =
            decode_todo_event(&serde_json::to_vec(&v).expect("bytes")).expect_err("invalid tag");
        assert!(
            matches!(err, SchemaError::Invalid { ref path, .. } if path.starts_with("/data/tags")),
            "{err}"
        );
        let mut v = serde_json::to_value(created()).expect("json");
        v["surprise"] = serde_json::json!(1);
        assert!(decode_todo_event(&serde_json::to_vec(&v).expect("bytes")).is_err());
    }

    #[test]
    fn producer_refuses_invalid_record() {
        let mut ev = created();
        ev.stream_version = 3; // a created event must start the stream
        assert!(encode_todo_event(&ev).is_err());
    }
}
