//! Wald's SPRT on where bad requests land, canary vs stable.

use serde::{Deserialize, Serialize};

/// The test's parameters and its running statistic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sprt {
    /// Bound on the false-rollback probability (type I error).
    pub alpha: f64,
    /// Bound on missing a canary that is `ratio` times worse (type II error).
    pub beta: f64,
    /// H1: the canary's odds of a bad request are this many times stable's.
    pub ratio: f64,
    /// Accumulated log-likelihood ratio (≥ 0 favours "canary is worse").
    pub llr: f64,
}

impl Sprt {
    pub fn new(alpha: f64, beta: f64, ratio: f64) -> Self {
        Self {
            alpha,
            beta,
            ratio,
            llr: 0.0,
        }
    }

    /// Crossing this rolls back: `ln((1 − β) / α)`.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// Below this the evidence says "no worse": `ln(β / (1 − α))`.
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    /// Add one interval: `canary_share` of the requests went to the canary;
    /// `bad_canary` and `bad_stable` bad requests were seen on each side.
    /// Intervals without bad requests carry no information and change nothing.
    pub fn update(&mut self, canary_share: f64, bad_canary: u64, bad_stable: u64) {
        if !(canary_share > 0.0 && canary_share < 1.0) {
            return;
        }
        let p0 = canary_share;
        let p1 = self.ratio * p0 / (self.ratio * p0 + (1.0 - p0));
        self.llr +=
            bad_canary as f64 * (p1 / p0).ln() + bad_stable as f64 * ((1.0 - p1) / (1.0 - p0)).ln();
    }

    pub fn rejects(&self) -> bool {
        self.llr >= self.upper()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_on_the_canary_push_towards_rollback() {
        let mut t = Sprt::new(0.01, 0.1, 5.0);
        t.update(0.1, 3, 0);
        assert!(t.llr > 0.0);
        assert!(
            !t.rejects(),
            "three errors at 10% share are not yet proof: {}",
            t.llr
        );
        t.update(0.1, 3, 0);
        assert!(t.rejects(), "{} vs {}", t.llr, t.upper());
    }

    #[test]
    fn errors_spread_like_traffic_move_towards_accepting() {
        let mut t = Sprt::new(0.01, 0.1, 5.0);
        t.update(0.1, 1, 9);
        assert!(t.llr < 0.0);
        t.update(0.1, 0, 40);
        assert!(
            t.llr < t.lower(),
            "plenty of evidence that the canary is no worse: {}",
            t.llr
        );
    }

    #[test]
    fn shares_of_zero_or_one_carry_no_information() {
        let mut t = Sprt::new(0.01, 0.1, 5.0);
        t.update(0.0, 5, 5);
        t.update(1.0, 5, 0);
        assert_eq!(t.llr, 0.0);
    }
}
