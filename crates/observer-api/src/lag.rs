//! `GET /api/v1/lag`: consumer-group lag with a Burrow-style status.

use serde::{Deserialize, Serialize};

/// Status of a partition or a group, ordered by severity (worst last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// No new data and no lag: nothing to do, not a failure.
    Idle,
    Ok,
    /// Lag growing across the whole window.
    Warn,
    /// The committed offset went backwards within the window.
    Rewind,
    /// Lag > 0, the offset has not moved for longer than the window, and the
    /// group has live members (consumers that heartbeat but do not progress).
    Stall,
    /// Lag > 0, the offset has not moved for longer than the window, and no
    /// member is left to commit.
    Stop,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Idle,
        Status::Ok,
        Status::Warn,
        Status::Rewind,
        Status::Stall,
        Status::Stop,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "IDLE",
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Rewind => "REWIND",
            Status::Stall => "STALL",
            Status::Stop => "STOP",
        }
    }
}

/// Consume and produce rates (records/s) over the window and the ETA to
/// reach zero lag at those rates: `lag / (consume − produce)`; `Some(0)`
/// without lag, `None` when the consumer is not gaining.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub consume_per_sec: f64,
    pub produce_per_sec: f64,
    pub catchup_eta_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub end_offset: i64,
    pub lag_messages: i64,
    /// `now − timestamp of the record at the committed offset`; 0 without lag;
    /// null when that record could not be read within the timeout.
    pub lag_seconds: Option<f64>,
    /// Timestamp (ms) of the record at the committed offset.
    pub committed_record_timestamp_ms: Option<i64>,
    pub status: Status,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub members: usize,
    pub status: Status,
    pub lag_messages: i64,
    /// Worst partition's lag in seconds.
    pub lag_seconds: Option<f64>,
    #[serde(flatten)]
    pub rates: Rates,
    pub partitions: Vec<PartitionView>,
    /// p99 event-time freshness (event → read model) over 5 minutes, from
    /// the projection's histogram of the service named like the group; null
    /// when no such service reports one (filled in by `GET /api/v1/lag`).
    #[serde(default)]
    pub projection_freshness_p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LagSnapshot {
    /// Time of the snapshot (ms since the epoch); lag seconds are relative to it.
    pub observed_at_ms: i64,
    pub window_ms: i64,
    pub groups: Vec<GroupView>,
}

/// What the lag tailer last saw: the body of `GET /api/v1/lag`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LagState {
    #[serde(flatten)]
    pub snapshot: LagSnapshot,
    /// Error of the last attempt, if it failed (the snapshot is then the last good one).
    pub error: Option<String>,
    pub snapshot_duration_seconds: Option<f64>,
    /// False until the first snapshot succeeded (or when no broker is configured).
    pub enabled: bool,
}
