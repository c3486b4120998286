//! Issue 18, item 1: on the broker the tests use (tansu), the Kafka-protocol
//! collector (`lag::Collector`) and the librdkafka per-group collector it
//! replaces (`lag::per_group::PerGroupCollector`) see the same cluster, and
//! the lag figures, statuses and ETAs computed from their snapshots are
//! identical, number for number, over rounds in which the lag changes.
//!
//! The cluster: two topics (3 + 1 partitions), a group that keeps up
//! (member, lag 0), a group with a member that commits only the first three
//! records of each partition (lagging, STALL/WARN), a group that committed
//! part of the records and left (no members, STOP), and records produced
//! between rounds. Each round reads new, old, new: a round counts only when
//! both reads of the new collector agree (offsets only grow, so nothing
//! moved while the old one read). The new collector runs twice: on what
//! tansu says in ApiVersions (its OffsetFetch path), and capped below v8
//! (the pipelined per-group path), so both paths are compared on tansu
//! when tansu batches.
//!
//! tansu quirk: its ListOffsets high watermark is wrong after batched
//! produces, so every send is awaited (one record per request).

use std::collections::BTreeMap;
use std::time::Duration;

use bus::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use bus::rdkafka::message::Message;
use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use bus::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use observer::config::Config;
use observer::lag::Collector;
use observer::lag::per_group::PerGroupCollector;
use observer::status::{Engine, Observation, Status};

const A: &str = "parity-a";
const B: &str = "parity-b";

fn consumer(brokers: &str, group: &str, auto_commit: bool) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "6000")
        .set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        )
        .set("auto.commit.interval.ms", "100")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer")
}

async fn produce(p: &FutureProducer, topic: &str, partition: i32, n: usize) {
    for i in 0..n {
        let payload = format!("record {i}");
        p.send(
            FutureRecord::<str, str>::to(topic)
                .payload(&payload)
                .partition(partition)
                .timestamp(chrono::Utc::now().timestamp_millis()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    }
}

/// The comparable part of an observation (everything but the clock).
type Raw = (
    Vec<(String, String, usize, BTreeMap<(String, i32), i64>)>,
    BTreeMap<(String, i32), i64>,
    BTreeMap<(String, i32, i64), i64>,
);

fn raw(o: &Observation) -> Raw {
    (
        o.groups
            .iter()
            .map(|g| {
                (
                    g.group.clone(),
                    g.state.clone(),
                    g.members,
                    g.committed.clone(),
                )
            })
            .collect(),
        o.ends.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        o.record_ts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_protocol_and_librdkafka_collectors_agree_number_for_number_on_tansu() {
    let broker = devstack::Broker::start().await.expect("broker");
    broker
        .create_topics(&[(A, 3), (B, 1)])
        .await
        .expect("topics");
    let brokers = broker.brokers();
    let mut settings = bus::KafkaSettings::new(brokers.clone(), "lag-parity");
    settings.linger_ms = 0;
    let producer = settings.producer().expect("producer");
    for p in 0..3 {
        produce(&producer, A, p, 6).await;
    }
    produce(&producer, B, 0, 4).await;

    // The group that left: commits offset 2 on every partition, no member.
    {
        let c = consumer(&brokers, "parity-gone", false);
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(A, p, Offset::Offset(2))
                .expect("tpl");
        }
        tpl.add_partition_offset(B, 0, Offset::Offset(1))
            .expect("tpl");
        c.commit(&tpl, CommitMode::Sync).expect("commit gone");
    }
    // The group that keeps up.
    let up = tokio::spawn({
        let brokers = brokers.clone();
        async move {
            let c = consumer(&brokers, "parity-up", true);
            c.subscribe(&[A, B]).expect("subscribe");
            loop {
                let _ = c.recv().await;
            }
        }
    });
    // The group with a member that commits only offsets below 3.
    let slow = tokio::spawn({
        let brokers = brokers.clone();
        async move {
            let c = consumer(&brokers, "parity-slow", false);
            c.subscribe(&[A, B]).expect("subscribe");
            loop {
                if let Ok(m) = c.recv().await
                    && m.offset() < 3
                {
                    let _ = c.commit_message(&m, CommitMode::Async);
                }
            }
        }
    });

    let cfg = Config {
        kafka_brokers: brokers.clone(),
        kafka_timeout_ms: 5_000,
        topics: vec![A.into(), B.into()],
        ..Config::default()
    };
    // Wait until both live groups have their offsets (first assignment ≈ 3 s).
    devstack::wait_until("live groups committed", Duration::from_secs(60), || {
        let cfg = cfg.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut c = Collector::new(&cfg).expect("collector");
                c.offsets().is_ok_and(|o| {
                    let n = |g: &str| {
                        o.groups
                            .iter()
                            .find(|x| x.group == g)
                            .map_or(0, |x| x.committed.len())
                    };
                    n("parity-up") == 4 && n("parity-slow") == 4
                })
            })
            .await
            .unwrap_or(false)
        }
    })
    .await
    .expect("groups ready");

    // Records keep arriving while the rounds run: the lag of the slow and
    // gone groups grows, the caught-up group follows.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ticker = tokio::spawn({
        let (producer, running) = (producer.clone(), running.clone());
        async move {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                produce(&producer, A, 0, 1).await;
                produce(&producer, B, 0, 1).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
    });
    let window_ms = 1_500;
    let result = tokio::task::spawn_blocking(move || {
        let mut new = Collector::new(&cfg).expect("new collector");
        let mut piped = Collector::new(&cfg)
            .expect("pipelined collector")
            .with_offset_fetch_max_version(7);
        let mut old = PerGroupCollector::new(&cfg).expect("old collector");
        let (mut e_new, mut e_piped, mut e_old) = (
            Engine::new(window_ms),
            Engine::new(window_ms),
            Engine::new(window_ms),
        );
        let mut rounds = 0;
        let mut retries = 0;
        let mut statuses = std::collections::BTreeSet::new();
        let mut lag_seconds_seen = 0;
        while rounds < 8 {
            let n1 = new.observe().expect("new observe");
            let o = old.observe().expect("old observe");
            let p = piped.observe().expect("pipelined observe");
            let n2 = new.observe().expect("new observe again");
            if raw(&n1) != raw(&n2) {
                retries += 1;
                assert!(retries < 50, "the cluster never held still");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            assert_eq!(raw(&n1), raw(&o), "raw snapshots, round {rounds}");
            assert_eq!(raw(&n1), raw(&p), "pipelined path, round {rounds}");
            // The same clock for all three, then the status engine.
            let at = n1.at_ms;
            let views: Vec<_> = [(&mut e_new, n1), (&mut e_old, o), (&mut e_piped, p)]
                .into_iter()
                .map(|(e, mut obs)| {
                    obs.at_ms = at;
                    e.apply(&obs)
                })
                .collect();
            assert_eq!(views[0], views[1], "lag views, round {rounds}");
            assert_eq!(views[0], views[2], "pipelined lag views, round {rounds}");
            for g in &views[0].groups {
                statuses.insert(g.status);
                for p in &g.partitions {
                    if p.lag_messages > 0 && p.lag_seconds.is_some() {
                        lag_seconds_seen += 1;
                    }
                }
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(400));
        }
        (statuses, lag_seconds_seen, new.stats(), piped.stats())
    })
    .await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = ticker.await;
    let (statuses, lag_seconds_seen, new_stats, piped_stats) = result.expect("rounds");
    println!("statuses seen: {statuses:?}; new path {new_stats:?}; capped path {piped_stats:?}");
    assert!(statuses.contains(&Status::Ok) || statuses.contains(&Status::Idle));
    assert!(
        statuses.contains(&Status::Stop),
        "the group without members and with lag reaches STOP: {statuses:?}"
    );
    assert!(lag_seconds_seen > 0, "lag in seconds was compared");
    assert_eq!(new_stats.connections, 1, "one connection to the one broker");
    assert_eq!(piped_stats.per_group_requests, 3);
    if new_stats.offset_fetch_version >= 8 {
        assert!(new_stats.batched_requests >= 1, "{new_stats:?}");
    } else {
        assert_eq!(new_stats.per_group_requests, 3, "{new_stats:?}");
    }
    up.abort();
    slow.abort();
    let _ = producer;
}
