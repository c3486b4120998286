//! Durations written the Prometheus way (`5m`, `1h`, `30d`, `1w`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds, parsed from and printed as a Prometheus duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub u64);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(s)
    }
    pub const fn mins(m: u64) -> Self {
        Dur(m * 60)
    }
    pub const fn hours(h: u64) -> Self {
        Dur(h * 3600)
    }
    pub const fn days(d: u64) -> Self {
        Dur(d * 86_400)
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64
    }

    /// Parses `<n><unit>` groups, e.g. `30d`, `1h30m`. Units: s, m, h, d, w.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration; write e.g. `5m`, `1h` or `30d`".into());
        }
        let mut total: u64 = 0;
        let mut num = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => {
                    return Err(format!(
                        "`{s}` is not a duration: unknown unit `{c}`; use s, m, h, d or w (e.g. `30d`)"
                    ));
                }
            };
            let n: u64 = num.parse().map_err(|_| {
                format!("`{s}` is not a duration: a number must precede `{c}` (e.g. `5m`)")
            })?;
            num.clear();
            total = total
                .checked_add(n.saturating_mul(unit))
                .ok_or_else(|| format!("`{s}` is too long"))?;
        }
        if !num.is_empty() {
            return Err(format!(
                "`{s}` is not a duration: a unit is missing after `{num}` (e.g. `{num}m`)"
            ));
        }
        if total == 0 {
            return Err(format!("`{s}` is zero; a duration must be positive"));
        }
        Ok(Dur(total))
    }

    /// Shortest Prometheus rendering (`1h`, `90m`, `30d`, `1d12h`).
    pub fn prom(self) -> String {
        let mut s = self.0;
        let mut out = String::new();
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= secs {
                let n = s / secs;
                s %= secs;
                out.push_str(&format!("{n}{unit}"));
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        out
    }

    /// Plain-words rendering for people: `1 h`, `30 min`, `3 days`.
    pub fn words(self) -> String {
        let s = self.0;
        if s.is_multiple_of(86_400) {
            let d = s / 86_400;
            if d == 1 {
                "1 day".into()
            } else {
                format!("{d} days")
            }
        } else if s.is_multiple_of(3600) {
            format!("{} h", s / 3600)
        } else if s.is_multiple_of(60) {
            format!("{} min", s / 60)
        } else {
            format!("{s} s")
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prom())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.prom())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(Dur::parse("30d").unwrap(), Dur::days(30));
        assert_eq!(Dur::parse("1h30m").unwrap(), Dur::mins(90));
        assert_eq!(Dur::parse("1w").unwrap(), Dur::days(7));
        assert_eq!(Dur::mins(90).prom(), "1h30m");
        assert_eq!(Dur::days(3).prom(), "3d");
        assert!(Dur::parse("5").is_err());
        assert!(Dur::parse("5x").is_err());
        assert!(Dur::parse("0m").is_err());
        assert!(Dur::parse("m").is_err());
    }
}
