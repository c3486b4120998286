//! Event envelopes and payloads. Events are past tense and versioned; a change
//! that is not backwards compatible gets a new `schema_version` and an upcaster,
//! never an edit of an existing version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Schema version written by this build for `todo-events`.
pub const TODO_EVENT_SCHEMA_VERSION: u32 = 1;
/// Schema version written by this build for `notification-events`.
pub const NOTIFICATION_EVENT_SCHEMA_VERSION: u32 = 1;
/// Schema version written by this build for `user-events`.
pub const USER_EVENT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(Default)]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Sort rank: higher is more urgent.
    pub fn rank(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// W3C trace context carried in the envelope so that a consumer can continue
/// the trace even when a hop dropped the Kafka headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The trace id (32 hex digits) of `traceparent`
    /// (`version-traceid-spanid-flags`).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.split('-').nth(1).filter(|t| t.len() == 32)
    }
}

/// Envelope of every record on `todo-events`. Unknown fields are rejected by
/// the JSON Schema (`additionalProperties: false`): serde cannot combine
/// `deny_unknown_fields` with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoEvent {
    pub event_id: Uuid,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub user_id: String,
    pub todo_id: Uuid,
    /// 1 for the event that created the stream, +1 for each event after it.
    pub stream_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    #[serde(flatten)]
    pub data: TodoEventData,
}

impl TodoEvent {
    pub fn event_type(&self) -> &'static str {
        self.data.event_type()
    }
}

/// What happened. Serialized as `"event_type": "todo.created", "data": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum TodoEventData {
    #[serde(rename = "todo.created")]
    Created(TodoCreated),
    #[serde(rename = "todo.updated")]
    Updated(TodoUpdated),
    #[serde(rename = "todo.completed")]
    Completed(Empty),
    #[serde(rename = "todo.reopened")]
    Reopened(Empty),
    #[serde(rename = "todo.deleted")]
    Deleted(Empty),
}

impl TodoEventData {
    pub fn event_type(&self) -> &'static str {
        match self {
            TodoEventData::Created(_) => "todo.created",
            TodoEventData::Updated(_) => "todo.updated",
            TodoEventData::Completed(_) => "todo.completed",
            TodoEventData::Reopened(_) => "todo.reopened",
            TodoEventData::Deleted(_) => "todo.deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoCreated {
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
}

/// A partial update: an absent field is unchanged; `due_date: null` clears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TodoUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "double_option::serialize",
        deserialize_with = "double_option::deserialize"
    )]
    pub due_date: Option<Option<DateTime<Utc>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `Option<Option<T>>` where an absent field is `None` and `null` is `Some(None)`.
pub mod double_option {
    use super::*;

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Envelope of records on `notification-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationEvent {
    /// Derived from the cause (UUIDv5), so a redelivered cause yields the same id
    /// and downstream senders can deduplicate.
    pub event_id: Uuid,
    pub event_type: NotificationKind,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub user_id: String,
    pub todo_id: Uuid,
    pub reason: String,
    pub title: String,
    pub due_date: Option<DateTime<Utc>>,
    pub caused_by: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationKind {
    #[serde(rename = "notification.email")]
    Email,
    #[serde(rename = "notification.push")]
    Push,
    #[serde(rename = "notification.sms")]
    Sms,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Email => "notification.email",
            NotificationKind::Push => "notification.push",
            NotificationKind::Sms => "notification.sms",
        }
    }
}

/// Envelope of records on `user-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEvent {
    pub event_id: Uuid,
    pub event_type: UserEventKind,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub user_id: String,
    pub caused_by: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEventKind {
    #[serde(rename = "user.registered")]
    Registered,
    #[serde(rename = "user.login")]
    Login,
    #[serde(rename = "user.updated")]
    Updated,
}

impl UserEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserEventKind::Registered => "user.registered",
            UserEventKind::Login => "user.login",
            UserEventKind::Updated => "user.updated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todo_event_round_trips_with_flat_type_and_data() {
        let ev = TodoEvent {
            event_id: Uuid::nil(),
            schema_version: 1,
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            user_id: "alice".into(),
            todo_id: Uuid::nil(),
            stream_version: 2,
            trace: None,
            data: TodoEventData::Updated(TodoUpdated {
                due_date: Some(None),
                ..Default::default()
            }),
        };
        let json = serde_json::to_value(&ev).expect("serializes");
        assert_eq!(json["event_type"], "todo.updated");
        assert!(json["data"]["due_date"].is_null());
        assert!(json["data"].get("title").is_none());
        let back: TodoEvent = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, ev);
    }
}
