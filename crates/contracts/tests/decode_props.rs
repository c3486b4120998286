//! Property tests of the record decoders, the code every consumer runs on
//! bytes it did not write: arbitrary bytes and mutated valid records must
//! give an error, never a panic; valid records round-trip exactly; whatever
//! decodes can be encoded again (so a consumer never holds an event it could
//! not republish).
//!
//! Bounded so it runs under plain `cargo test`: `PROPTEST_CASES` raises it.

use chrono::{DateTime, Utc};
use contracts::schema::{
    decode_notification_event, decode_todo_event, decode_user_event, encode_todo_event,
};
use contracts::{
    Empty, Priority, TodoCreated, TodoEvent, TodoEventData, TodoUpdated, TraceContext,
};
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Failures are reported with their minimal input; no files written.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970 to 2100, with sub-second precision down to the nanosecond.
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or_default())
}

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z0-9-]{1,32}", 0..=10)
}

fn created() -> impl Strategy<Value = TodoEventData> {
    (
        "\\PC{1,60}",
        "\\PC{0,120}",
        priority(),
        prop::option::of(timestamp()),
        tags(),
    )
        .prop_map(|(title, description, priority, due_date, tags)| {
            TodoEventData::Created(TodoCreated {
                title,
                description,
                priority,
                due_date,
                tags,
            })
        })
}

fn updated() -> impl Strategy<Value = TodoEventData> {
    (
        prop::option::of("\\PC{1,60}"),
        prop::option::of("\\PC{0,120}"),
        prop::option::of(priority()),
        prop::option::of(prop::option::of(timestamp())),
        prop::option::of(tags()),
    )
        .prop_map(|(title, description, priority, due_date, tags)| {
            let mut u = TodoUpdated {
                title,
                description,
                priority,
                due_date,
                tags,
            };
            // The schema requires at least one changed field.
            if u == TodoUpdated::default() {
                u.priority = Some(Priority::High);
            }
            TodoEventData::Updated(u)
        })
}

fn todo_event() -> impl Strategy<Value = TodoEvent> {
    let data = prop_oneof![
        created(),
        updated(),
        Just(TodoEventData::Completed(Empty {})),
        Just(TodoEventData::Reopened(Empty {})),
        Just(TodoEventData::Deleted(Empty {})),
    ];
    let trace = prop::option::of(
        (
            "[0-9a-f]{32}",
            "[0-9a-f]{16}",
            prop::option::of("[a-z0-9=,]{1,40}"),
        )
            .prop_map(|(t, s, state)| TraceContext {
                traceparent: format!("00-{t}-{s}-01"),
                tracestate: state,
            }),
    );
    (
        any::<u128>(),
        any::<u128>(),
        timestamp(),
        "[a-zA-Z0-9@._|-]{1,64}",
        2i64..1_000_000,
        trace,
        data,
    )
        .prop_map(|(eid, tid, at, user, version, trace, data)| TodoEvent {
            event_id: uuid::Uuid::from_u128(eid),
            schema_version: 1,
            occurred_at: at,
            user_id: user,
            todo_id: uuid::Uuid::from_u128(tid),
            stream_version: if matches!(data, TodoEventData::Created(_)) {
                1
            } else {
                version
            },
            trace,
            data,
        })
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(Value::from("todo.created")),
        Just(Value::from("2024-02-30T25:61:61Z")),
        Just(Value::from(u64::MAX)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        any::<usize>().prop_map(ByteEdit::Remove),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let n = bytes.len().max(1);
    match *edit {
        ByteEdit::Flip(i, bit) => {
            if let Some(b) = bytes.get_mut(i % n) {
                *b ^= 1 << bit;
            }
        }
        ByteEdit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        ByteEdit::Remove(i) => {
            if !bytes.is_empty() {
                bytes.remove(i % n);
            }
        }
        ByteEdit::Truncate(i) => bytes.truncate(i % n),
    }
}

#[derive(Debug, Clone)]
enum JsonEdit {
    /// Replace the value at the n-th field (top level or inside `data`).
    Set(usize, Value),
    Remove(usize),
    /// Add an unknown field.
    Add(String, Value),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(i, v)| JsonEdit::Set(i, v)),
        any::<usize>().prop_map(JsonEdit::Remove),
        ("[a-z_]{1,12}", json_value()).prop_map(|(k, v)| JsonEdit::Add(k, v)),
    ]
}

fn edit_json(v: &mut Value, edit: &JsonEdit) {
    // Field paths: every top-level key, and every key of `data`.
    let mut paths: Vec<(Option<String>, String)> = Vec::new();
    if let Some(obj) = v.as_object() {
        for k in obj.keys() {
            paths.push((None, k.clone()));
        }
        if let Some(data) = obj.get("data").and_then(Value::as_object) {
            for k in data.keys() {
                paths.push((Some("data".into()), k.clone()));
            }
        }
    }
    let (i, new) = match edit {
        JsonEdit::Add(k, new) => {
            if let Some(obj) = v.as_object_mut() {
                obj.insert(k.clone(), new.clone());
            }
            return;
        }
        JsonEdit::Set(i, new) => (*i, Some(new)),
        JsonEdit::Remove(i) => (*i, None),
    };
    if paths.is_empty() {
        return;
    }
    let (parent, key) = &paths[i % paths.len()];
    let obj = match parent {
        None => v.as_object_mut(),
        Some(p) => v.get_mut(p).and_then(Value::as_object_mut),
    };
    if let Some(obj) = obj {
        match new {
            Some(new) => obj.insert(key.clone(), new.clone()),
            None => obj.remove(key),
        };
    }
}

/// What every decoder must do with any input: return, and if it accepted
/// the record, be able to encode it again.
fn decodes_cleanly(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(ev) = decode_todo_event(bytes) {
        prop_assert!(
            encode_todo_event(&ev).is_ok(),
            "decoded but cannot re-encode: {ev:?}"
        );
    }
    let _ = decode_notification_event(bytes);
    let _ = decode_user_event(bytes);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decodes_cleanly(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        decodes_cleanly(&serde_json::to_vec(&v).unwrap_or_default())?;
    }

    #[test]
    fn valid_events_round_trip(ev in todo_event()) {
        let bytes = encode_todo_event(&ev).map_err(|e| TestCaseError::fail(format!("{e}: {ev:?}")))?;
        let back = decode_todo_event(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {ev:?}")))?;
        prop_assert_eq!(back, ev);
    }

    #[test]
    fn byte_mutations_of_valid_events_never_panic(
        ev in todo_event(),
        edits in prop::collection::vec(byte_edit(), 1..6),
    ) {
        let mut bytes = encode_todo_event(&ev).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for e in &edits {
            apply(&mut bytes, e);
        }
        decodes_cleanly(&bytes)?;
    }

    #[test]
    fn field_mutations_of_valid_events_never_panic(
        ev in todo_event(),
        edits in prop::collection::vec(json_edit(), 1..4),
    ) {
        let mut v = serde_json::to_value(&ev).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for e in &edits {
            edit_json(&mut v, e);
        }
        decodes_cleanly(&serde_json::to_vec(&v).unwrap_or_default())?;
    }
}
