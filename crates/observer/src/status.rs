//! The lag status engine: pure, no IO. Keeps a sliding window of offset
//! samples per partition and derives a Burrow-style status, lag in messages
//! and seconds, and a catch-up ETA. The rules are documented in
//! `docs/observer.md` and mirrored one to one by `partition_status`.

use std::collections::{BTreeMap, HashMap, VecDeque};

pub use observer_api::lag::{GroupView, LagSnapshot, PartitionView, Rates, Status};

/// One observation of a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub committed: i64,
    pub end: i64,
}

impl Sample {
    pub fn lag(&self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

/// Samples of one partition for one group, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
    /// When the current committed offset was first observed.
    offset_since_ms: i64,
}

impl History {
    /// Add a sample and drop the ones older than needed for `window_ms`
    /// (one sample before the window start is kept as its left edge).
    pub fn push(&mut self, s: Sample, window_ms: i64) {
        match self.samples.back() {
            Some(last) if last.committed == s.committed => {}
            _ => self.offset_since_ms = s.at_ms,
        }
        self.samples.push_back(s);
        let start = s.at_ms - window_ms;
        while self.samples.len() > 2 && self.samples[1].at_ms <= start {
            self.samples.pop_front();
        }
    }
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }
    /// Samples inside the window ending at the latest sample (at least the latest).
    pub fn window(&self, window_ms: i64) -> Vec<Sample> {
        let Some(last) = self.samples.back() else {
            return Vec::new();
        };
        let start = last.at_ms - window_ms;
        self.samples
            .iter()
            .filter(|s| s.at_ms >= start)
            .copied()
            .collect()
    }
    pub fn offset_since_ms(&self) -> i64 {
        self.offset_since_ms
    }
}

/// The status rules, applied in this order to the samples of the last
/// `window_ms` (see docs/observer.md, "Lag status rules"):
/// 1. REWIND: the committed offset decreased between two samples.
/// 2. lag = 0: IDLE if the end offset did not move within the window, else OK.
/// 3. lag > 0 and the committed offset has not changed for longer than the
///    window: STALL when the group has live members, else STOP.
/// 4. lag > 0 and the lag grew strictly over the last three samples (two
///    consecutive increases): WARN.
/// 5. Otherwise OK.
pub fn partition_status(h: &History, now_ms: i64, window_ms: i64, has_members: bool) -> Status {
    let w = h.window(window_ms);
    let Some(last) = w.last() else {
        return Status::Idle;
    };
    if w.windows(2).any(|p| p[1].committed < p[0].committed) {
        return Status::Rewind;
    }
    if last.lag() == 0 {
        let first = w[0];
        return if first.end == last.end {
            Status::Idle
        } else {
            Status::Ok
        };
    }
    if now_ms - h.offset_since_ms() > window_ms {
        return if has_members {
            Status::Stall
        } else {
            Status::Stop
        };
    }
    if w.len() >= 3 && w[w.len() - 3..].windows(2).all(|p| p[1].lag() > p[0].lag()) {
        return Status::Warn;
    }
    Status::Ok
}

pub fn rates<'a>(windows: impl IntoIterator<Item = &'a [Sample]>, lag: i64) -> Rates {
    let (mut consumed, mut produced, mut span_ms) = (0i64, 0i64, 0i64);
    for w in windows {
        if let (Some(f), Some(l)) = (w.first(), w.last()) {
            consumed += (l.committed - f.committed).max(0);
            produced += (l.end - f.end).max(0);
            span_ms = span_ms.max(l.at_ms - f.at_ms);
        }
    }
    let secs = span_ms as f64 / 1000.0;
    let (c, p) = if secs > 0.0 {
        (consumed as f64 / secs, produced as f64 / secs)
    } else {
        (0.0, 0.0)
    };
    let eta = if lag == 0 {
        Some(0.0)
    } else if c > p {
        Some(lag as f64 / (c - p))
    } else {
        None
    };
    Rates {
        consume_per_sec: c,
        produce_per_sec: p,
        catchup_eta_seconds: eta,
    }
}

/// Raw observation of one group in one snapshot (what the broker said).
#[derive(Debug, Clone, Default)]
pub struct GroupObservation {
    pub group: String,
    /// Broker group state (`Stable`, `Empty`, `PreparingRebalance`, …).
    pub state: String,
    pub members: usize,
    /// `(topic, partition) → committed offset` (partitions without a commit omitted).
    pub committed: BTreeMap<(String, i32), i64>,
}

/// A whole snapshot: groups, end offsets and record timestamps.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub at_ms: i64,
    pub groups: Vec<GroupObservation>,
    pub ends: HashMap<(String, i32), i64>,
    /// Timestamp (ms) of the record at `(topic, partition, offset)`.
    pub record_ts: HashMap<(String, i32, i64), i64>,
}

/// Keeps the histories across snapshots and turns observations into views.
#[derive(Debug, Default)]
pub struct Engine {
    window_ms: i64,
    histories: HashMap<(String, String, i32), History>,
}

impl Engine {
    pub fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            histories: HashMap::new(),
        }
    }

    pub fn apply(&mut self, obs: &Observation) -> LagSnapshot {
        let now = obs.at_ms;
        let mut seen = std::collections::HashSet::new();
        let mut groups = Vec::with_capacity(obs.groups.len());
        for g in &obs.groups {
            let mut parts = Vec::with_capacity(g.committed.len());
            let mut windows = Vec::with_capacity(g.committed.len());
            for ((topic, partition), committed) in &g.committed {
                let Some(end) = obs.ends.get(&(topic.clone(), *partition)).copied() else {
                    continue;
                };
                let key = (g.group.clone(), topic.clone(), *partition);
                let s = Sample {
                    at_ms: now,
                    committed: *committed,
                    end,
                };
                let h = self.histories.entry(key.clone()).or_default();
                h.push(s, self.window_ms);
                seen.insert(key);
                let status = partition_status(h, now, self.window_ms, g.members > 0);
                let lag = s.lag();
                let ts = obs
                    .record_ts
                    .get(&(topic.clone(), *partition, *committed))
                    .copied();
                let lag_seconds = if lag == 0 {
                    Some(0.0)
                } else {
                    ts.map(|t| ((now - t) as f64 / 1000.0).max(0.0))
                };
                windows.push(h.window(self.window_ms));
                parts.push(PartitionView {
                    topic: topic.clone(),
                    partition: *partition,
                    committed_offset: *committed,
                    end_offset: end,
                    lag_messages: lag,
                    lag_seconds,
                    committed_record_timestamp_ms: if lag == 0 { None } else { ts },
                    status,
                });
            }
            let lag: i64 = parts.iter().map(|p| p.lag_messages).sum();
            let status = if parts.is_empty() {
                Status::Idle
            } else {
                parts.iter().map(|p| p.status).max().unwrap_or(Status::Idle)
            };
            let lag_seconds = parts
                .iter()
                .filter_map(|p| p.lag_seconds)
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| a.max(v)))
                });
            let rates = rates(windows.iter().map(Vec::as_slice), lag);
            groups.push(GroupView {
                group: g.group.clone(),
                state: g.state.clone(),
                members: g.members,
                status,
                lag_messages: lag,
                lag_seconds,
                rates,
                partitions: parts,
                projection_freshness_p99_seconds: None,
            });
        }
        self.histories.retain(|k, _| seen.contains(k));
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        LagSnapshot {
            observed_at_ms: now,
            window_ms: self.window_ms,
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(samples: &[(i64, i64, i64)], window: i64) -> History {
        let mut h = History::default();
        for &(at_ms, committed, end) in samples {
            h.push(
                Sample {
                    at_ms,
                    committed,
                    end,
                },
                window,
            );
        }
        h
    }

    #[test]
    fn idle_when_no_data_and_no_lag() {
        let h = hist(&[(0, 10, 10), (1000, 10, 10), (2000, 10, 10)], 5000);
        assert_eq!(partition_status(&h, 2000, 5000, false), Status::Idle);
        // Even long after the last commit: no lag is never STOP.
        let h = hist(&[(0, 10, 10), (60_000, 10, 10)], 5000);
        assert_eq!(partition_status(&h, 60_000, 5000, false), Status::Idle);
    }

    #[test]
    fn ok_when_keeping_up() {
        let h = hist(&[(0, 10, 10), (1000, 20, 20), (2000, 29, 30)], 5000);
        assert_eq!(partition_status(&h, 2000, 5000, true), Status::Ok);
        // Lag that goes up and down is not growing.
        let h = hist(&[(0, 8, 10), (1000, 19, 20), (2000, 27, 30)], 5000);
        assert_eq!(partition_status(&h, 2000, 5000, true), Status::Ok);
    }

    #[test]
    fn warn_when_lag_grows() {
        let h = hist(&[(0, 10, 12), (1000, 12, 20), (2000, 13, 30)], 5000);
        assert_eq!(partition_status(&h, 2000, 5000, true), Status::Warn);
    }

    #[test]
    fn stop_and_stall_when_offset_stands_still_past_the_window() {
        let h = hist(
            &[(0, 10, 12), (3000, 10, 20), (6000, 10, 30), (9000, 10, 30)],
            5000,
        );
        assert_eq!(partition_status(&h, 9000, 5000, false), Status::Stop);
        assert_eq!(partition_status(&h, 9000, 5000, true), Status::Stall);
        // Not yet past the window: lag growing is only a warning.
        let h = hist(&[(0, 10, 12), (1500, 10, 20), (3000, 10, 30)], 5000);
        assert_eq!(partition_status(&h, 3000, 5000, false), Status::Warn);
    }

    #[test]
    fn rewind_when_offset_goes_back() {
        let h = hist(&[(0, 10, 30), (1000, 5, 30)], 5000);
        assert_eq!(partition_status(&h, 1000, 5000, true), Status::Rewind);
    }

    #[test]
    fn eta_from_rates() {
        let w = [
            Sample {
                at_ms: 0,
                committed: 0,
                end: 100,
            },
            Sample {
                at_ms: 10_000,
                committed: 200,
                end: 200,
            },
        ];
        // consume 20/s, produce 10/s, lag 50 → 5 s.
        let r = rates([&w[..]], 50);
        assert_eq!(r.catchup_eta_seconds, Some(5.0));
        let r = rates([&w[..1]], 50);
        assert_eq!(r.catchup_eta_seconds, None);
        assert_eq!(rates([&w[..]], 0).catchup_eta_seconds, Some(0.0));
    }

    #[test]
    fn engine_reports_exact_lag_seconds_and_groups_without_offsets() {
        let mut e = Engine::new(5000);
        let mut obs = Observation {
            at_ms: 10_000,
            ..Default::default()
        };
        obs.ends.insert(("t".into(), 0), 20);
        obs.record_ts.insert(("t".into(), 0, 15), 7_500);
        let mut g = GroupObservation {
            group: "g".into(),
            state: "Empty".into(),
            ..Default::default()
        };
        g.committed.insert(("t".into(), 0), 15);
        obs.groups.push(g);
        obs.groups.push(GroupObservation {
            group: "nothing-committed".into(),
            state: "Empty".into(),
            ..Default::default()
        });
        let snap = e.apply(&obs);
        assert_eq!(snap.groups.len(), 2);
        let g = &snap.groups[0];
        assert_eq!(g.lag_messages, 5);
        assert_eq!(g.lag_seconds, Some(2.5));
        assert_eq!(snap.groups[1].status, Status::Idle);
    }
}
