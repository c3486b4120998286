//! A fault schedule drawn from a seed: the same seed gives the same
//! schedule on every machine (SplitMix64, no library whose algorithm may
//! change under us).

use std::fmt;
use std::time::Duration;

/// SplitMix64: small, fast, and fixed forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Milliseconds uniform in `lo..=hi`.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    /// Milliseconds log-uniform in `lo..=hi` (as many 50–500 ms as 0.5–5 s).
    pub fn log_ms(&mut self, lo: u64, hi: u64) -> Duration {
        let (l, h) = ((lo.max(1)) as f64, hi as f64);
        Duration::from_millis((l * (h / l).powf(self.unit())).round() as u64)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A process of the platform a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Postgres,
    Broker,
    Command,
    Query,
    Processor,
    Observer,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Postgres,
        Target::Broker,
        Target::Command,
        Target::Query,
        Target::Processor,
        Target::Observer,
    ];
    /// The broker keeps its data in memory (tansu), so it is only frozen,
    /// never killed or restarted.
    pub const RESTARTABLE: [Target; 5] = [
        Target::Postgres,
        Target::Command,
        Target::Query,
        Target::Processor,
        Target::Observer,
    ];

    /// Stopped cleanly and started again. Not the consumers: tansu (the
    /// local broker) loses a consumer group for good once its member leaves
    /// it cleanly (docs/reliability.md); they are crashed (SIGKILL) and
    /// frozen instead, which it survives.
    pub const GRACEFUL: [Target; 3] = [Target::Postgres, Target::Command, Target::Observer];

    pub fn name(self) -> &'static str {
        match self {
            Target::Postgres => "postgres",
            Target::Broker => "broker",
            Target::Command => "command-service",
            Target::Query => "query-service",
            Target::Processor => "event-processor",
            Target::Observer => "observer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGSTOP, then SIGCONT after `for_` (a GC pause, a partition, an I/O stall).
    Freeze { target: Target, for_: Duration },
    /// SIGKILL, started again after `down`.
    Kill { target: Target, down: Duration },
    /// A clean stop (SIGTERM; PostgreSQL's fast shutdown), started again after `down`.
    Restart { target: Target, down: Duration },
    /// PostgreSQL stops, comes back after `down` and is frozen at once for
    /// `frozen` (a database that returns but does not answer yet).
    PgRestartFrozen { down: Duration, frozen: Duration },
}

impl Fault {
    /// How long the fault lasts before it is healed.
    pub fn length(&self) -> Duration {
        match self {
            Fault::Freeze { for_, .. } => *for_,
            Fault::Kill { down, .. } | Fault::Restart { down, .. } => *down,
            Fault::PgRestartFrozen { down, frozen } => *down + *frozen,
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Freeze { target, for_ } => {
                write!(f, "freeze {} for {}", target.name(), secs(*for_))
            }
            Fault::Kill { target, down } => write!(
                f,
                "SIGKILL {}, restart after {}",
                target.name(),
                secs(*down)
            ),
            Fault::Restart { target, down } => {
                write!(
                    f,
                    "stop {} cleanly, start after {}",
                    target.name(),
                    secs(*down)
                )
            }
            Fault::PgRestartFrozen { down, frozen } => write!(
                f,
                "stop postgres, start it after {} frozen (SIGSTOP) for {}",
                secs(*down),
                secs(*frozen)
            ),
        }
    }
}

/// One fault and when it starts, from the start of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

/// The faults of one run, one after another (each healed before the next).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Faults filling about `length`, drawn from `seed`.
    pub fn generate(seed: u64, length: Duration) -> Self {
        let mut rng = Rng::new(seed);
        let mut steps = Vec::new();
        let mut t = rng.ms(500, 1500);
        while t < length {
            let fault = match rng.below(100) {
                0..=39 => Fault::Freeze {
                    target: rng.pick(&Target::ALL),
                    for_: rng.ms(300, 4000),
                },
                40..=64 => Fault::Kill {
                    target: rng.pick(&Target::RESTARTABLE),
                    down: rng.ms(200, 2500),
                },
                65..=84 => Fault::Restart {
                    target: rng.pick(&Target::GRACEFUL),
                    down: rng.ms(200, 2500),
                },
                _ => Fault::PgRestartFrozen {
                    down: rng.ms(500, 2000),
                    frozen: rng.ms(1500, 4000),
                },
            };
            let len = fault.length();
            steps.push(Step { at: t, fault });
            t += len + rng.ms(500, 2500);
        }
        Self { seed, steps }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "schedule of seed {} ({} faults):",
            self.seed,
            self.steps.len()
        )?;
        for s in &self.steps {
            writeln!(f, "  +{:>5.1}s  {}", s.at.as_secs_f64(), s.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule() {
        let a = Schedule::generate(42, Duration::from_secs(30));
        let b = Schedule::generate(42, Duration::from_secs(30));
        assert_eq!(a, b);
        assert_ne!(a, Schedule::generate(43, Duration::from_secs(30)));
        assert!(!a.steps.is_empty());
        // Faults follow each other: each is healed before the next starts.
        for w in a.steps.windows(2) {
            assert!(w[0].at + w[0].fault.length() < w[1].at, "{a}");
        }
    }

    #[test]
    fn the_broker_is_never_killed_or_restarted() {
        for seed in 0..200 {
            for s in Schedule::generate(seed, Duration::from_secs(30)).steps {
                if let Fault::Kill { target, .. } | Fault::Restart { target, .. } = s.fault {
                    assert_ne!(target, Target::Broker);
                }
            }
        }
    }

    #[test]
    fn the_generator_is_pinned() {
        // SplitMix64's reference output for seed 1234567.
        let mut r = Rng::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }
}
