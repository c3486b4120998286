//! Wald's SPRT on where bad requests land, canary vs stable, and a Wald
//! SPRT on the canary's own error ratio against its SLO's error budget.

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

/// Wald's SPRT on the canary's own error ratio `p` (an absolute test, no
/// comparison with stable): H0 `p ≤ p0`, H1 `p = p1`. Under H0 the
/// likelihood ratio is a supermartingale (for `p < p0` it only drifts down
/// faster), so by Ville's inequality it ever crosses `ln((1 − β)/α)` with
/// probability at most `α`, however often it is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSprt {
    pub p0: f64,
    pub p1: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl RateSprt {
    /// `llr` after `errors` failures among `requests`.
    pub fn update(&self, llr: f64, requests: u64, errors: u64) -> f64 {
        let errors = errors.min(requests);
        llr + errors as f64 * (self.p1 / self.p0).ln()
            + (requests - errors) as f64 * ((1.0 - self.p1) / (1.0 - self.p0)).ln()
    }

    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
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
    fn rate_test_needs_two_quick_failures_or_more_over_longer() {
        // Budget 0.1%, H1 50× the budget, α 1/300.
        let t = RateSprt {
            p0: 0.001,
            p1: 0.05,
            alpha: 0.01 / 3.0,
            beta: 0.1,
        };
        assert!(t.update(0.0, 1, 1) < t.upper(), "one failure is not proof");
        assert!(t.update(0.0, 30, 2) >= t.upper(), "2 of 30 is");
        assert!(t.update(0.0, 100, 2) < t.upper(), "2 of 100 is not");
        assert!(t.update(0.0, 100, 4) >= t.upper());
        assert!(t.update(0.0, 10_000, 5) < 0.0, "0.05% drifts towards H0");
    }

    #[test]
    fn shares_of_zero_or_one_carry_no_information() {
        let mut t = Sprt::new(0.01, 0.1, 5.0);
        t.update(0.0, 5, 5);
        t.update(1.0, 5, 0);
        assert_eq!(t.llr, 0.0);
    }
}
