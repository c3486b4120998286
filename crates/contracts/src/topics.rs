//! Kafka topic names and the header names we put on records.

/// Every todo event, keyed by todo id so one stream stays in one partition.
pub const TODO_EVENTS: &str = "todo-events";
/// Records from `todo-events` the event processor could not handle.
pub const TODO_EVENTS_DLQ: &str = "todo-events.dlq";
/// Notifications the event processor decided to send.
pub const NOTIFICATION_EVENTS: &str = "notification-events";
/// User lifecycle events (`user.registered`).
pub const USER_EVENTS: &str = "user-events";

/// Topics with their default partition count, created by the local stack,
/// the tests and the Kubernetes `KafkaTopic` resources.
pub const ALL: &[(&str, i32)] = &[
    (TODO_EVENTS, 6),
    (TODO_EVENTS_DLQ, 1),
    (NOTIFICATION_EVENTS, 3),
    (USER_EVENTS, 3),
];

/// Kafka record header names.
pub mod headers {
    /// W3C trace context, copied from the HTTP request that caused the record.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    /// `event_type` of the record, so consumers can route without decoding.
    pub const EVENT_TYPE: &str = "event-type";
    pub const SCHEMA_VERSION: &str = "schema-version";
    /// DLQ headers: why a record was dead-lettered and where it came from.
    pub const DLQ_ERROR: &str = "dlq-error";
    pub const DLQ_ERROR_KIND: &str = "dlq-error-kind";
    pub const DLQ_ATTEMPTS: &str = "dlq-attempts";
    pub const DLQ_SOURCE_TOPIC: &str = "dlq-source-topic";
    pub const DLQ_SOURCE_PARTITION: &str = "dlq-source-partition";
    pub const DLQ_SOURCE_OFFSET: &str = "dlq-source-offset";
    pub const DLQ_CONSUMER_GROUP: &str = "dlq-consumer-group";
}
