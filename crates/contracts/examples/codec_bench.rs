//! Cost of encoding (with schema validation) and decoding one todo event:
//! `cargo run --release -p contracts --example codec_bench`.
use std::time::Instant;

use contracts::{Priority, TodoCreated, TodoEvent, TodoEventData};

fn main() {
    let ev = TodoEvent {
        event_id: uuid::Uuid::new_v4(),
        schema_version: 1,
        occurred_at: chrono::Utc::now(),
        user_id: "bench".into(),
        todo_id: uuid::Uuid::now_v7(),
        stream_version: 1,
        trace: None,
        data: TodoEventData::Created(TodoCreated {
            title: "bench".into(),
            description: String::new(),
            priority: Priority::Medium,
            due_date: None,
            tags: vec!["load".into()],
        }),
    };
    let n = 20_000;
    let bytes = contracts::schema::encode_todo_event(&ev).expect("valid");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(contracts::schema::encode_todo_event(&ev).expect("valid"));
    }
    println!(
        "encode+validate: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(contracts::schema::decode_todo_event(&bytes).expect("valid"));
    }
    println!(
        "decode+validate: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_vec(&ev).expect("json"));
    }
    println!(
        "serde only:      {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
