//! The computed decision rules that turn measurements into verdicts.
//!
//! No experiment states its verdict; it hands its measured [`Summary`]s to a rule here.
//!
//! # The cost rule ([`cost_claim`])
//!
//! A claim of the form "X costs more for processes than for threads" compares the medians
//! `mp` (process) and `mt` (thread) of two series of the same quantity.
//!
//! 1. The effect size is the **ratio of medians** `r = mp / mt`.
//! 2. Its noise band is built from each median's approximate 95 % interval, the box-plot
//!    notch `median ± 1.58·IQR/√n` (McGill, Tukey & Larsen 1978; see
//!    [`Summary::notch`]). Taking the worst combination of both intervals gives the ratio
//!    interval `[low, high] = [(mp − np)/(mt + nt), (mp + np)/(mt − nt)]`, which is
//!    conservative (wider than the exact interval of a ratio).
//! 3. The claim is **confirmed** when the whole interval lies above 1 (`low > 1`: the
//!    difference is not noise) **and** `r ≥ 1 + MIN_EFFECT` (the difference matters: at
//!    least 10 %).
//! 4. Otherwise it is **refuted**, for one of three stated reasons: the opposite holds
//!    (`high < 1` and `1/r ≥ 1 + MIN_EFFECT`), the two differ by less than `MIN_EFFECT`, or
//!    the difference is within measurement noise (the interval contains 1). The summary
//!    says which, through [`CostComparison::explain`].
//!
//! # Combining conditions ([`combine`])
//!
//! An experiment measured under several conditions (one core vs two cores, fork vs exec)
//! gets one verdict per condition; [`combine`] returns the common verdict when they agree
//! and [`Verdict::Depends`] naming which conditions confirm and which do not otherwise.

use crate::measure::Summary;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Smallest relative difference the cost rule counts as real: 10 %.
pub const MIN_EFFECT: f64 = 0.10;

/// A claim's verdict. In JSON it is the string field `"verdict"` (`"confirmed"`,
/// `"refuted"` or `"depends"`), plus a `"condition"` string for `depends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The measurements support the claim on this machine.
    Confirmed,
    /// The measurements contradict the claim, or do not show the claimed effect.
    Refuted,
    /// The claim holds under some of the measured conditions only.
    Depends {
        /// When it holds and when it does not, in words.
        condition: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Confirmed => f.write_str("confirmed"),
            Verdict::Refuted => f.write_str("refuted"),
            Verdict::Depends { .. } => f.write_str("depends"),
        }
    }
}

/// What the cost rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The process figure is higher by at least `MIN_EFFECT`, beyond noise.
    ProcessCostsMore,
    /// The thread figure is higher by at least `MIN_EFFECT`, beyond noise.
    ThreadCostsMore,
    /// The two differ beyond noise, but by less than `MIN_EFFECT`.
    NegligibleDifference,
    /// The ratio's interval contains 1: the difference cannot be told from noise.
    WithinNoise,
}

/// The result of [`cost_claim`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostComparison {
    /// Ratio of medians, process / thread.
    pub ratio: f64,
    /// Lower end of the ratio's conservative 95 % interval.
    pub low: f64,
    /// Upper end of the ratio's conservative 95 % interval (may be infinite).
    pub high: f64,
    /// What the rule decided.
    pub outcome: Outcome,
}

impl CostComparison {
    /// The verdict on "processes cost more": confirmed only for
    /// [`Outcome::ProcessCostsMore`].
    pub fn verdict(&self) -> Verdict {
        match self.outcome {
            Outcome::ProcessCostsMore => Verdict::Confirmed,
            _ => Verdict::Refuted,
        }
    }

    /// One clause stating the ratio, its interval and the reason for the verdict, e.g.
    /// `ratio 4.60× (95 % interval 4.10–5.00×): higher beyond noise and by ≥ 10 %`.
    pub fn explain(&self) -> String {
        let reason = match self.outcome {
            Outcome::ProcessCostsMore => "process cost higher beyond noise and by ≥ 10 %",
            Outcome::ThreadCostsMore => "the opposite holds: thread cost higher by ≥ 10 %",
            Outcome::NegligibleDifference => "the two differ by less than 10 %",
            Outcome::WithinNoise => "difference within measurement noise (interval contains 1)",
        };
        format!(
            "ratio {:.2}× (95 % interval {:.2}–{}): {reason}",
            self.ratio,
            self.low,
            if self.high.is_finite() { format!("{:.2}×", self.high) } else { "∞".to_owned() }
        )
    }
}

/// Applies the cost rule (module doc) to the claim "the process figure is higher".
pub fn cost_claim(process: &Summary, thread: &Summary) -> CostComparison {
    let (mp, mt) = (process.median, thread.median);
    let (np, nt) = (process.notch(), thread.notch());
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    let ratio = if mp == mt { 1.0 } else { div(mp, mt) };
    let low = div((mp - np).max(0.0), mt + nt);
    let high = div(mp + np, mt - nt);
    let outcome = if low > 1.0 {
        if ratio >= 1.0 + MIN_EFFECT {
            Outcome::ProcessCostsMore
        } else {
            Outcome::NegligibleDifference
        }
    } else if high < 1.0 {
        if ratio * (1.0 + MIN_EFFECT) <= 1.0 {
            Outcome::ThreadCostsMore
        } else {
            Outcome::NegligibleDifference
        }
    } else {
        Outcome::WithinNoise
    };
    CostComparison { ratio, low, high, outcome }
}

/// Combines per-condition verdicts `(condition, verdict)` into one (module doc).
///
/// An empty list is [`Verdict::Refuted`]: nothing was shown.
pub fn combine(parts: &[(&str, Verdict)]) -> Verdict {
    if parts.is_empty() {
        return Verdict::Refuted;
    }
    if parts.iter().all(|(_, v)| *v == Verdict::Confirmed) {
        return Verdict::Confirmed;
    }
    if parts.iter().all(|(_, v)| *v == Verdict::Refuted) {
        return Verdict::Refuted;
    }
    let clauses: Vec<String> = parts
        .iter()
        .map(|(when, v)| match v {
            Verdict::Confirmed => format!("holds {when}"),
            Verdict::Refuted => format!("not {when}"),
            Verdict::Depends { condition } => format!("{when}: {condition}"),
        })
        .collect();
    Verdict::Depends { condition: clauses.join("; ") }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic summary with the given median and relative IQR over `n` samples (also
    /// used by the other experiments' verdict tests).
    pub(crate) fn summary(median: f64, rel_iqr: f64, n: usize) -> Summary {
        let half = median * rel_iqr / 2.0;
        Summary {
            n,
            min: median - 2.0 * half,
            max: median + 2.0 * half,
            mean: median,
            median,
            p25: median - half,
            p75: median + half,
            p99: median + 2.0 * half,
            mad: half,
        }
    }

    #[test]
    fn clearly_higher_is_confirmed() {
        let c = cost_claim(&summary(90e-6, 0.2, 500), &summary(20e-6, 0.3, 500));
        assert_eq!(c.outcome, Outcome::ProcessCostsMore);
        assert_eq!(c.verdict(), Verdict::Confirmed);
        assert!((c.ratio - 4.5).abs() < 1e-9);
        assert!(c.low > 1.0 && c.high > c.ratio && c.low < c.ratio);
        assert!(c.explain().contains("4.50×"));
    }

    #[test]
    fn clearly_lower_is_refuted_as_opposite() {
        let c = cost_claim(&summary(10.0, 0.1, 100), &summary(20.0, 0.1, 100));
        assert_eq!(c.outcome, Outcome::ThreadCostsMore);
        assert_eq!(c.verdict(), Verdict::Refuted);
    }

    #[test]
    fn small_but_significant_difference_is_negligible() {
        // 5 % apart with tight spreads over many samples: real, but below MIN_EFFECT.
        let c = cost_claim(&summary(1.05, 0.02, 1000), &summary(1.0, 0.02, 1000));
        assert_eq!(c.outcome, Outcome::NegligibleDifference);
        assert_eq!(c.verdict(), Verdict::Refuted);
        let c = cost_claim(&summary(1.0, 0.02, 1000), &summary(1.05, 0.02, 1000));
        assert_eq!(c.outcome, Outcome::NegligibleDifference);
    }

    #[test]
    fn large_ratio_in_noise_is_not_confirmed() {
        // 30 % apart, but the spread is huge and there are few samples.
        let c = cost_claim(&summary(1.3, 1.5, 10), &summary(1.0, 1.5, 10));
        assert_eq!(c.outcome, Outcome::WithinNoise);
        assert_eq!(c.verdict(), Verdict::Refuted);
        assert!(c.explain().contains("noise"));
    }

    #[test]
    fn equal_medians_are_within_noise() {
        let c = cost_claim(&summary(1.0, 0.1, 50), &summary(1.0, 0.1, 50));
        assert_eq!(c.ratio, 1.0);
        assert_eq!(c.outcome, Outcome::WithinNoise);
    }

    #[test]
    fn combine_agreeing_and_disagreeing() {
        assert_eq!(
            combine(&[("a", Verdict::Confirmed), ("b", Verdict::Confirmed)]),
            Verdict::Confirmed
        );
        assert_eq!(combine(&[("a", Verdict::Refuted)]), Verdict::Refuted);
        assert_eq!(combine(&[]), Verdict::Refuted);
        let v = combine(&[("on one core", Verdict::Confirmed), ("across cores", Verdict::Refuted)]);
        assert_eq!(
            v,
            Verdict::Depends { condition: "holds on one core; not across cores".to_owned() }
        );
        assert_eq!(v.to_string(), "depends");
    }

    #[test]
    fn verdict_json_has_a_string_verdict_field() {
        let json = serde_json::to_string(&Verdict::Depends { condition: "x".into() }).unwrap();
        assert_eq!(json, r#"{"verdict":"depends","condition":"x"}"#);
        assert_eq!(
            serde_json::to_string(&Verdict::Confirmed).unwrap(),
            r#"{"verdict":"confirmed"}"#
        );
    }
}
