//! CPU time per process from the kernel's own accounting: `utime + stime`
//! of `/proc/<pid>/stat`, in clock ticks. Unlike throughput, these figures
//! do not move when something else runs on the machine: each process is
//! charged only for the CPU it used itself.
//!
//! PostgreSQL is a tree: the postmaster plus every backend and helper it
//! forked. Its figure is the sum over the live processes of the tree plus the
//! postmaster's `cutime + cstime` (the CPU of children that exited and were
//! reaped), so a backend that ends during a phase is still counted.

use serde::Serialize;

/// What to sample, by name.
pub enum Source {
    /// One process (all its threads, including any that exited).
    Process(u32),
    /// The threads of one process whose name starts with a prefix
    /// (librdkafka's threads are `rdk:main`, `rdk:broker…`).
    Threads(u32, &'static str),
    /// A postmaster and everything it forked.
    Tree(u32),
}

pub struct Probe {
    pub name: &'static str,
    pub source: Source,
}

/// Fields after the `(comm)` of a stat line; the comm may hold spaces and
/// parentheses, so split after the last ')'. Index 0 is field 3 (`state`).
fn stat_fields(text: &str) -> Option<Vec<u64>> {
    let (_, rest) = text.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

const UTIME: usize = 14 - 3;
const STIME: usize = 15 - 3;
const CUTIME: usize = 16 - 3;
const CSTIME: usize = 17 - 3;
const PPID: usize = 4 - 3;

fn own_ticks(path: &std::path::Path) -> Option<(u64, u64)> {
    let f = stat_fields(&std::fs::read_to_string(path).ok()?)?;
    Some((
        f.get(UTIME)? + f.get(STIME)?,
        f.get(CUTIME)? + f.get(CSTIME)?,
    ))
}

fn comm(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            let (a, b) = (s.find('(')?, s.rfind(')')?);
            Some(s[a + 1..b].to_string())
        })
        .unwrap_or_default()
}

fn ticks(source: &Source) -> u64 {
    match *source {
        Source::Process(pid) => own_ticks(format!("/proc/{pid}/stat").as_ref()).map_or(0, |t| t.0),
        Source::Threads(pid, prefix) => std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|t| comm(&t.path().join("stat")).starts_with(prefix))
            .filter_map(|t| own_ticks(&t.path().join("stat")))
            .map(|t| t.0)
            .sum(),
        Source::Tree(root) => {
            let Some((own, reaped)) = own_ticks(format!("/proc/{root}/stat").as_ref()) else {
                return 0;
            };
            let children: u64 = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter_map(|e| {
                    let f = stat_fields(&std::fs::read_to_string(e.path().join("stat")).ok()?)?;
                    (*f.get(PPID)? == u64::from(root)).then(|| f[UTIME] + f[STIME])
                })
                .sum();
            own + reaped + children
        }
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know),
/// asked once: each `getconf` is a child process whose CPU would otherwise
/// be charged to the caller's `cutime`.
fn ticks_per_sec() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Ticks of each probe at one instant.
pub struct Sample(Vec<u64>);

pub fn sample(probes: &[Probe]) -> Sample {
    Sample(probes.iter().map(|p| ticks(&p.source)).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuRow {
    pub process: String,
    pub cpu_secs: f64,
    /// CPU seconds per 1,000 events written in the phase.
    pub per_1k_events: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CpuPhase {
    /// Events written (and, for the whole platform, published and applied) in the phase.
    pub events: u64,
    pub wall_secs: f64,
    pub rows: Vec<CpuRow>,
}

impl CpuPhase {
    pub fn get(&self, process: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.process == process)
            .map(|r| r.per_1k_events)
    }
}

/// CPU of each probe between two samples, per 1,000 events.
pub fn phase(
    probes: &[Probe],
    before: &Sample,
    after: &Sample,
    events: u64,
    wall_secs: f64,
) -> CpuPhase {
    let hz = ticks_per_sec();
    let rows = probes
        .iter()
        .zip(before.0.iter().zip(&after.0))
        .map(|(p, (b, a))| {
            let secs = a.saturating_sub(*b) as f64 / hz;
            CpuRow {
                process: p.name.to_string(),
                cpu_secs: secs,
                per_1k_events: if events > 0 {
                    secs * 1000.0 / events as f64
                } else {
                    f64::NAN
                },
            }
        })
        .collect();
    CpuPhase {
        events,
        wall_secs,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_spaces_and_parentheses_in_comm() {
        let line = "42 (tokio (x) y) S 7 42 42 0 -1 4194560 100 0 0 0 250 30 5 2 20 0 9 0";
        let f = stat_fields(line).expect("a stat line has fields after the comm");
        assert_eq!(f[PPID], 7);
        assert_eq!((f[UTIME], f[STIME], f[CUTIME], f[CSTIME]), (250, 30, 5, 2));
    }

    #[test]
    fn this_process_is_charged_for_work_it_does() {
        let probes = [Probe {
            name: "self",
            source: Source::Process(std::process::id()),
        }];
        let before = sample(&probes);
        // Spin until the kernel has charged 200 ms (a loaded machine only
        // makes this take longer), within a generous bound.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let p = phase(&probes, &before, &sample(&probes), 1000, 0.0);
            if p.rows[0].cpu_secs >= 0.2 {
                break;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "no CPU charged: {:?}",
                p.rows
            );
        }
        std::hint::black_box(x);
        let p = phase(&probes, &before, &sample(&probes), 2000, 0.0);
        assert!((p.rows[0].per_1k_events - p.rows[0].cpu_secs / 2.0).abs() < 1e-9);
    }
}
