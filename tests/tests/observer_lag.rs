//! Acceptance 1 of the observer (issue 5) on a real broker: with a producer
//! running and the consumer stopped, the group goes OK → WARN → STOP; lag in
//! seconds equals the age of the oldest unconsumed record (within 1 s); after
//! the consumer comes back and catches up it is OK again; a group on an idle
//! topic stays IDLE; a group without members is still listed.
//!
//! tansu quirk: its ListOffsets high watermark is wrong after batched
//! produces, so the producer here awaits every send (one record per request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::rdkafka::ClientConfig;
use bus::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

const BUSY: &str = "lag-busy";
const IDLE: &str = "lag-idle";

fn consumer(brokers: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "6000")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "100")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer")
}

/// Consume `topic` until `stop` fires; the consumer leaves the group when dropped.
fn spawn_consumer(
    brokers: String,
    group: &'static str,
    topic: &'static str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        let c = consumer(&brokers, group);
        c.subscribe(&[topic]).expect("subscribe");
        loop {
            tokio::select! {
                _ = &mut rx => break,
                m = c.recv() => { if let Err(e) = m { eprintln!("consumer {group}: {e}"); } }
            }
        }
        // Commit what was consumed, then leave the group (drop = close).
        let _ = c.commit_consumer_state(CommitMode::Sync);
    });
    (tx, h)
}

async fn produce_one(p: &FutureProducer, topic: &str, i: u64) -> (i64, i64) {
    let ts = chrono::Utc::now().timestamp_millis();
    let payload = format!("record {i}");
    let key = format!("k{i}");
    let delivery = p
        .send(
            FutureRecord::to(topic)
                .payload(&payload)
                .key(&key)
                .partition(0)
                .timestamp(ts),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    (delivery.offset, ts)
}

async fn lag(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/api/v1/lag"))
        .send()
        .await
        .expect("GET /api/v1/lag")
        .json()
        .await
        .expect("json")
}

fn group<'a>(snap: &'a Value, name: &str) -> Option<&'a Value> {
    snap["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == name)
}

fn status(snap: &Value, name: &str) -> Option<String> {
    group(snap, name).and_then(|g| g["status"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_goes_ok_warn_stop_and_back_with_exact_seconds_idle_and_memberless_groups() {
    let broker = devstack::Broker::start().await.expect("broker");
    broker
        .create_topics(&[(BUSY, 1), (IDLE, 1)])
        .await
        .expect("topics");
    let brokers = broker.brokers();
    let mut settings = bus::KafkaSettings::new(brokers.clone(), "observer-lag-test");
    settings.linger_ms = 0;
    let producer = settings.producer().expect("producer");

    // The idle topic: 5 records, fully consumed by a group that stays up
    // (IDLE) and by one that then leaves (no members, still listed).
    for i in 0..5 {
        produce_one(&producer, IDLE, i).await;
    }
    let (idle_stop, idle_task) = spawn_consumer(brokers.clone(), "idle-consumer", IDLE);
    let (gone_stop, gone_task) = spawn_consumer(brokers.clone(), "gone-group", IDLE);

    // Producer of the busy topic: one record every 50 ms, each send awaited.
    let produced: Arc<Mutex<HashMap<i64, i64>>> = Arc::new(Mutex::new(HashMap::new()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prod_task = {
        let (p, produced, running) = (producer.clone(), produced.clone(), running.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let (offset, ts) = produce_one(&p, BUSY, i).await;
                produced.lock().expect("lock").insert(offset, ts);
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (busy_stop, busy_task) = spawn_consumer(brokers.clone(), "busy-consumer", BUSY);

    let port = devstack::free_port().expect("port");
    let logs = tempfile_dir();
    let env = vec![
        (
            "OBSERVER_LISTEN_ADDR".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        ("OBSERVER_KAFKA_BROKERS".to_string(), brokers.clone()),
        (
            "OBSERVER_LAG_POLL_INTERVAL_MS".to_string(),
            "250".to_string(),
        ),
        (
            "OBSERVER_LAG_STATUS_WINDOW_MS".to_string(),
            "3000".to_string(),
        ),
        ("OBSERVER_KAFKA_TIMEOUT_MS".to_string(), "3000".to_string()),
        (
            "OBSERVER_TOPICS".to_string(),
            format!("[\"{BUSY}\", \"{IDLE}\"]"),
        ),
    ];
    let observer = devstack::ServiceProcess::spawn("observer", port, &env, &logs)
        .await
        .expect("observer");
    let base = observer.base_url();
    let client = reqwest::Client::new();

    // The gone group leaves once it has committed everything.
    devstack::wait_until("gone-group to commit 5", Duration::from_secs(60), || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let s = lag(&client, &base).await;
            group(&s, "gone-group").and_then(|g| g["partitions"][0]["committed_offset"].as_i64())
                == Some(5)
        }
    })
    .await
    .expect("gone-group committed");
    gone_stop.send(()).ok();
    gone_task.await.expect("gone consumer");

    // Phase 1: the busy consumer keeps up → OK.
    devstack::wait_until("busy-consumer OK", Duration::from_secs(60), || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let s = lag(&client, &base).await;
            status(&s, "busy-consumer").as_deref() == Some("OK")
                && group(&s, "busy-consumer").is_some_and(|g| g["members"].as_u64() == Some(1))
        }
    })
    .await
    .expect("busy consumer OK");

    // Phase 2: stop the consumer; the producer keeps going.
    busy_stop.send(()).ok();
    busy_task.await.expect("busy consumer");
    let mut seen: Vec<String> = vec!["OK".into()];
    let deadline = Instant::now() + Duration::from_secs(40);
    let stop_snap = loop {
        let s = lag(&client, &base).await;
        let st = status(&s, "busy-consumer").expect("busy-consumer listed");
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "STOP" {
            break s;
        }
        assert!(Instant::now() < deadline, "no STOP within 40 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        seen,
        vec!["OK", "WARN", "STOP"],
        "status sequence after stopping the consumer"
    );
    // Let a few more snapshots pass while stopped, then check lag seconds
    // against the age of the oldest unconsumed record.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = lag(&client, &base).await;
    let now = chrono::Utc::now().timestamp_millis();
    let g = group(&s, "busy-consumer").expect("busy group");
    assert_eq!(g["status"], "STOP", "{g}");
    assert_eq!(g["members"], 0, "{g}");
    let p = &g["partitions"][0];
    let committed = p["committed_offset"].as_i64().expect("committed");
    let end = p["end_offset"].as_i64().expect("end");
    let lag_secs = p["lag_seconds"].as_f64().expect("lag seconds");
    let record_ts = *produced
        .lock()
        .expect("lock")
        .get(&committed)
        .expect("the record at the committed offset was produced by this test");
    let age_now = (now - record_ts) as f64 / 1000.0;
    let age_at_snapshot =
        (s["observed_at_ms"].as_i64().expect("observed_at") - record_ts) as f64 / 1000.0;
    println!(
        "STOP: committed {committed}, end {end}, lag {} msgs, lag_seconds {lag_secs:.3}, oldest unconsumed record age now {age_now:.3} s (at snapshot {age_at_snapshot:.3} s)",
        p["lag_messages"]
    );
    assert!(
        age_now > 3.0,
        "the record should be several seconds old: {age_now}"
    );
    assert!(
        (lag_secs - age_now).abs() <= 1.0,
        "lag_seconds {lag_secs} vs age of the oldest unconsumed record {age_now}"
    );
    assert!(
        (lag_secs - age_at_snapshot).abs() <= 0.001,
        "exact at the snapshot time"
    );
    assert_eq!(p["lag_messages"].as_i64(), Some(end - committed));
    assert!(end - committed > 20, "lag should have built up: {p}");
    assert!(g["catchup_eta_seconds"].is_null(), "not catching up: {g}");
    let _ = stop_snap;

    // Phase 3: the consumer comes back and catches up → OK.
    let (busy_stop, busy_task) = spawn_consumer(brokers.clone(), "busy-consumer", BUSY);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut back: Vec<String> = vec!["STOP".into()];
    loop {
        let s = lag(&client, &base).await;
        let g = group(&s, "busy-consumer").expect("listed");
        let st = g["status"].as_str().unwrap_or("").to_string();
        if back.last() != Some(&st) {
            back.push(st.clone());
        }
        if st == "OK" && g["lag_messages"].as_i64().is_some_and(|l| l < 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not OK again within 60 s: {back:?} {g}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("after resume: {back:?}");

    // Idle topic: the live group is IDLE, the gone group listed without members.
    let s = lag(&client, &base).await;
    let idle = group(&s, "idle-consumer").expect("idle-consumer listed");
    assert_eq!(idle["status"], "IDLE", "{idle}");
    assert_eq!(idle["lag_messages"], 0, "{idle}");
    assert_eq!(idle["members"], 1, "{idle}");
    let gone = group(&s, "gone-group").expect("group without members listed");
    assert_eq!(gone["members"], 0, "{gone}");
    assert_eq!(gone["status"], "IDLE", "{gone}");
    println!("gone-group state from the broker: {}", gone["state"]);

    // Metrics carry the same numbers with bounded labels.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("kafka_consumergroup_lag_seconds{group=\"busy-consumer\",topic=\"lag-busy\",partition=\"0\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kafka_consumergroup_status{group=\"idle-consumer\",status=\"IDLE\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("member_id")
            && !metrics.contains("client_id")
            && !metrics.contains("rdkafka"),
        "no member or client ids in metrics"
    );

    running.store(false, std::sync::atomic::Ordering::Relaxed);
    prod_task.await.expect("producer");
    busy_stop.send(()).ok();
    idle_stop.send(()).ok();
    let _ = tokio::join!(busy_task, idle_task);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("observer-lag-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("log dir");
    d
}
