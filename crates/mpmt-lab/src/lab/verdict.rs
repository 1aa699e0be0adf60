//! The computed decision rules that turn measurements into verdicts.
//!
//! No experiment states its verdict; it hands its measurements to the rules here, and the
//! rules are pure functions of those numbers. Four rules, applied in this order:
//!
//! # Rule 1: the effect, from paired rounds ([`paired_rounds`])
//!
//! Every experiment measures in interleaved **rounds**: in round `i` both models run, one
//! right after the other, so whatever the machine was doing then (another job, a frequency
//! step, a noisy neighbour) hits both. The effect is computed from the rounds, not from
//! pooled samples:
//!
//! 1. Per round, the **paired ratio** `rᵢ = pᵢ / tᵢ` of the process figure and the thread
//!    figure of that round (each the median of the round's samples).
//! 2. The effect is their **geometric mean** `R = exp(mean(ln rᵢ))`, the summary of ratios
//!    that does not depend on which side is the numerator (Fleming & Wallace 1986).
//! 3. Its 95 % interval is the **Student-t interval over the log-ratios**,
//!    `exp(mean(ln rᵢ) ± t(0.975, k − 1)·sd(ln rᵢ)/√k)` over `k` rounds
//!    ([`crate::measure::stats::mean_interval`]). A machine that drifts between rounds
//!    makes the `rᵢ` disagree and so *widens* the interval, where an interval built from the
//!    pooled samples of one run (the box-plot notch of [`cost_claim`], kept as a detail)
//!    stays narrow and overstates certainty: the level of variation that matters is the
//!    repetition, not the sample (Kalibera & Jones 2013, who show that the variation between
//!    repetitions of a benchmark dominates and must be in the interval).
//! 4. The interval is at least `R·(1 ± RESOLUTION)` wide ([`RESOLUTION`] = 3 %): one run
//!    cannot see the variation between runs (the issue that introduced this rule measured a
//!    ratio of 1.09–1.13 in five idle runs whose within-run intervals were a fifth as wide),
//!    so the lab does not claim a resolution finer than that.
//!
//! References: P. J. Fleming, J. J. Wallace, "How not to lie with statistics: the correct
//! way to summarize benchmark results", *CACM* 29(3), 1986; T. Kalibera, R. Jones,
//! "Rigorous benchmarking in reasonable time", *ISMM* 2013; Student, *Biometrika* 6(1), 1908.
//!
//! # Rule 2: the graded verdict ([`grade`])
//!
//! The effect `R` with interval `[lo, hi]` is stated in the claim's direction (`R > 1`
//! supports the claim). With `m = MIN_EFFECT = 10 %`, the two boundaries are `1 + m` and
//! `1/(1 + m)`:
//!
//! | interval | verdict | strength |
//! |---|---|---|
//! | `lo ≥ 1 + m` | `confirmed` | `lo ≥ 2`: `strong`; `lo ≥ 1.25`: `moderate`; else `small` |
//! | `1/(1 + m) ≤ lo` and `hi ≤ 1 + m` | `refuted` | `negligible` |
//! | `hi ≤ 1/(1 + m)` | `refuted` | `opposite` |
//! | straddles a boundary | `marginal` | none (the summary states `R` and the interval) |
//!
//! The strength is graded on the lower end of the interval: "at least this strong, with
//! 95 % confidence". `marginal` is the honest answer for an effect that sits on the 10 %
//! line: instead of a coin flip between `confirmed` and `refuted` from run to run, the same
//! `marginal` with the effect stated every time.
//!
//! # Rule 3: combining conditions ([`combine`])
//!
//! An experiment measured under several conditions (one core vs two cores, fork vs exec)
//! grades each condition by rule 2. [`combine`] returns the common verdict when they all
//! agree (a confirmation with the weakest of the strengths; a refutation `opposite` only if
//! every condition is), and [`Verdict::Depends`] otherwise, with a condition naming which
//! conditions confirm, refute or stay marginal.
//!
//! # Rule 4: agreement across repeats ([`Agreement`])
//!
//! `mpmt lab --repeat N` runs each claim `N` times; per claim the report gives the most
//! frequent verdict with its strength and how many repeats gave it (`3/3 confirmed, small`),
//! and the spread of the effect `R` across repeats (min, median, max).
//!
//! # The within-run cost rule ([`cost_claim`]), a detail
//!
//! Before rounds were paired, the cost rule compared pooled medians `mp`, `mt`: ratio of
//! medians `r = mp/mt` with the conservative interval from each median's box-plot notch
//! (McGill, Tukey & Larsen 1978; [`Summary::notch`]),
//! `[(mp − np)/(mt + nt), (mp + np)/(mt − nt)]`. It is kept where no rounds exist (the `ipc`
//! claim measures each transport in one block) and as a within-run detail in summaries;
//! [`CostComparison::effect`] feeds it to rule 2.

use crate::measure::Summary;
use crate::measure::stats::mean_interval;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Smallest relative difference the rules count as real: 10 %.
pub const MIN_EFFECT: f64 = 0.10;

/// Finest resolution a single run may claim for an effect (rule 1, step 4): 3 %.
pub const RESOLUTION: f64 = 0.03;

/// How strong a confirmed effect is (rule 2), graded on the interval's lower end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// At least 1.1×, below 1.25×.
    Small,
    /// At least 1.25×, below 2×.
    Moderate,
    /// At least 2×.
    Strong,
}

/// Why a refuted claim is refuted (rule 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refutation {
    /// The whole interval lies within ±10 %: no effect that matters.
    Negligible,
    /// The whole interval lies beyond 10 % the other way: the opposite holds.
    Opposite,
}

/// A claim's verdict. In JSON it is the string field `"verdict"` (`"confirmed"`,
/// `"refuted"`, `"marginal"` or `"depends"`), the field `"strength"` (`"strong"`,
/// `"moderate"`, `"small"` for confirmed; `"negligible"`, `"opposite"` for refuted; `null`
/// otherwise), and for `depends` a `"condition"` string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "VerdictJson", try_from = "VerdictJson")]
pub enum Verdict {
    /// The measurements support the claim on this machine, by at least 10 %.
    Confirmed(Size),
    /// The measurements contradict the claim, or show an effect under 10 %.
    Refuted(Refutation),
    /// The effect's interval straddles a 10 % boundary: it cannot be told on which side the
    /// effect lies; the summary states the effect.
    Marginal,
    /// The claim holds under some of the measured conditions only.
    Depends {
        /// When it holds and when it does not, in words.
        condition: String,
    },
}

impl Verdict {
    /// The verdict word: `confirmed`, `refuted`, `marginal` or `depends`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Confirmed(_) => "confirmed",
            Verdict::Refuted(_) => "refuted",
            Verdict::Marginal => "marginal",
            Verdict::Depends { .. } => "depends",
        }
    }

    /// The strength word, where one applies.
    pub fn strength(&self) -> Option<&'static str> {
        match self {
            Verdict::Confirmed(Size::Strong) => Some("strong"),
            Verdict::Confirmed(Size::Moderate) => Some("moderate"),
            Verdict::Confirmed(Size::Small) => Some("small"),
            Verdict::Refuted(Refutation::Negligible) => Some("negligible"),
            Verdict::Refuted(Refutation::Opposite) => Some("opposite"),
            Verdict::Marginal | Verdict::Depends { .. } => None,
        }
    }
}

/// `confirmed, strong`, `refuted, negligible`, `marginal`, `depends`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.strength() {
            Some(strength) => write!(f, "{}, {strength}", self.word()),
            None => f.write_str(self.word()),
        }
    }
}

/// The JSON shape of a [`Verdict`] (its doc comment is the schema).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VerdictJson {
    verdict: String,
    strength: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
}

impl From<Verdict> for VerdictJson {
    fn from(v: Verdict) -> VerdictJson {
        let strength = v.strength().map(str::to_owned);
        let verdict = v.word().to_owned();
        let condition = match v {
            Verdict::Depends { condition } => Some(condition),
            _ => None,
        };
        VerdictJson { verdict, strength, condition }
    }
}

impl TryFrom<VerdictJson> for Verdict {
    type Error = String;
    fn try_from(j: VerdictJson) -> Result<Verdict, String> {
        Ok(match (j.verdict.as_str(), j.strength.as_deref()) {
            ("confirmed", Some("strong")) => Verdict::Confirmed(Size::Strong),
            ("confirmed", Some("moderate")) => Verdict::Confirmed(Size::Moderate),
            ("confirmed", Some("small")) => Verdict::Confirmed(Size::Small),
            ("refuted", Some("negligible")) => Verdict::Refuted(Refutation::Negligible),
            ("refuted", Some("opposite")) => Verdict::Refuted(Refutation::Opposite),
            ("marginal", None) => Verdict::Marginal,
            ("depends", None) => Verdict::Depends { condition: j.condition.unwrap_or_default() },
            (v, s) => return Err(format!("unknown verdict {v:?} with strength {s:?}")),
        })
    }
}

/// An effect in the claim's direction (`ratio > 1` supports the claim) with its 95 %
/// interval: what [`grade`] decides on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The effect: a geometric mean of paired round ratios (rule 1), or a ratio of medians.
    pub ratio: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end of the 95 % interval (may be infinite).
    pub high: f64,
    /// The paired ratio of every round, in the order measured (empty when not from rounds).
    pub rounds: Vec<f64>,
}

impl Effect {
    /// The same effect seen from the other side (`1/ratio`, interval inverted), for claims
    /// in which the thread figure being higher supports the claim.
    pub fn inverse(&self) -> Effect {
        let inv = |x: f64| if x > 0.0 { 1.0 / x } else { f64::INFINITY };
        Effect {
            ratio: inv(self.ratio),
            low: inv(self.high),
            high: inv(self.low),
            rounds: self.rounds.iter().map(|&r| inv(r)).collect(),
        }
    }

    /// The interval as `[low, high]`, the JSON shape of a claim's `interval`.
    pub fn interval(&self) -> [f64; 2] {
        [self.low, self.high]
    }

    /// `1.11× (95 % interval 1.07–1.15×, 10 rounds)`.
    pub fn explain(&self) -> String {
        let high = if self.high.is_finite() { format!("{:.2}×", self.high) } else { "∞".into() };
        let rounds = match self.rounds.len() {
            0 => String::new(),
            1 => ", 1 round".to_owned(),
            k => format!(", {k} rounds"),
        };
        format!("{:.2}× (95 % interval {:.2}–{high}{rounds})", self.ratio, self.low)
    }
}

/// Rule 1 (module docs): the effect "the process figure is higher" from per-round figures
/// `process[i]`, `thread[i]` of the same round `i` (e.g. each round's median).
///
/// Rounds where either figure is not finite and positive are left out; `None` when no round
/// remains. One round gives an infinite interval (its spread is unknown).
pub fn paired_rounds(process: &[f64], thread: &[f64]) -> Option<Effect> {
    let rounds: Vec<f64> = process
        .iter()
        .zip(thread)
        .filter(|(p, t)| p.is_finite() && t.is_finite() && **p > 0.0 && **t > 0.0)
        .map(|(p, t)| p / t)
        .collect();
    let logs: Vec<f64> = rounds.iter().map(|r| r.ln()).collect();
    let (mean, half) = mean_interval(&logs)?;
    let ratio = mean.exp();
    let low = (mean - half).exp().min(ratio / (1.0 + RESOLUTION));
    let high = (mean + half).exp().max(ratio * (1.0 + RESOLUTION));
    Some(Effect { ratio, low, high, rounds })
}

/// Per-round medians of `samples`, taken in `rounds` consecutive, equally long chunks (the
/// last may be shorter): the per-round figures rule 1 pairs, for series whose samples were
/// taken round by round.
pub fn round_medians(samples: &[f64], rounds: usize) -> Vec<f64> {
    if rounds == 0 || samples.is_empty() {
        return Vec::new();
    }
    samples
        .chunks(samples.len().div_ceil(rounds))
        .filter_map(|chunk| Summary::from_samples(chunk).map(|s| s.median))
        .collect()
}

/// Rule 2 (module docs): the graded verdict on an effect stated in the claim's direction.
pub fn grade(effect: &Effect) -> Verdict {
    let up = 1.0 + MIN_EFFECT;
    let down = 1.0 / up;
    let (lo, hi) = (effect.low, effect.high);
    if lo.is_nan() || hi.is_nan() {
        Verdict::Marginal
    } else if lo >= up {
        Verdict::Confirmed(if lo >= 2.0 {
            Size::Strong
        } else if lo >= 1.25 {
            Size::Moderate
        } else {
            Size::Small
        })
    } else if hi <= down {
        Verdict::Refuted(Refutation::Opposite)
    } else if lo >= down && hi <= up {
        Verdict::Refuted(Refutation::Negligible)
    } else {
        Verdict::Marginal
    }
}

/// Words for a graded effect: the verdict, the effect and the rule's reason, e.g.
/// `marginal: 1.11× (95 % interval 1.07–1.15×, 10 rounds) straddles 1.10×`.
pub fn explain(effect: &Effect) -> String {
    let verdict = grade(effect);
    let reason = match verdict {
        Verdict::Confirmed(_) => "lies above 1.10×",
        Verdict::Refuted(Refutation::Negligible) => "lies within ±10 %",
        Verdict::Refuted(Refutation::Opposite) => "lies below 1/1.10×: the opposite holds",
        _ if effect.low < 1.0 + MIN_EFFECT && effect.high > 1.0 + MIN_EFFECT => "straddles 1.10×",
        _ => "straddles 1/1.10×",
    };
    format!("{verdict}: {} {reason}", effect.explain())
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
    /// The within-run effect (no rounds), for rule 2.
    pub fn effect(&self) -> Effect {
        Effect { ratio: self.ratio, low: self.low, high: self.high, rounds: Vec::new() }
    }

    /// The graded verdict (rule 2) on "processes cost more" from the within-run interval.
    pub fn verdict(&self) -> Verdict {
        grade(&self.effect())
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

/// Rule 3 (module docs): combines per-condition verdicts `(condition, verdict)` into one.
///
/// An empty list is [`Verdict::Marginal`]: nothing was decided.
pub fn combine(parts: &[(&str, Verdict)]) -> Verdict {
    let Some((_, first)) = parts.first() else {
        return Verdict::Marginal;
    };
    let same_word = parts.iter().all(|(_, v)| v.word() == first.word());
    match first {
        Verdict::Confirmed(_) if same_word => {
            let weakest = parts
                .iter()
                .filter_map(|(_, v)| match v {
                    Verdict::Confirmed(size) => Some(*size),
                    _ => None,
                })
                .min()
                .unwrap_or(Size::Small);
            return Verdict::Confirmed(weakest);
        }
        Verdict::Refuted(_) if same_word => {
            let all_opposite =
                parts.iter().all(|(_, v)| *v == Verdict::Refuted(Refutation::Opposite));
            return Verdict::Refuted(if all_opposite {
                Refutation::Opposite
            } else {
                Refutation::Negligible
            });
        }
        Verdict::Marginal if same_word => return Verdict::Marginal,
        _ => {}
    }
    let clauses: Vec<String> = parts
        .iter()
        .map(|(when, v)| match v {
            Verdict::Confirmed(_) => format!("holds {when} ({})", v.strength().unwrap_or("")),
            Verdict::Refuted(Refutation::Negligible) => format!("not {when} (negligible)"),
            Verdict::Refuted(Refutation::Opposite) => format!("not {when} (the opposite)"),
            Verdict::Marginal => format!("marginal {when}"),
            Verdict::Depends { condition } => format!("{when}: {condition}"),
        })
        .collect();
    Verdict::Depends { condition: clauses.join("; ") }
}

/// Rule 4 (module docs): how the repeats of one claim agree. Field docs are the JSON schema
/// of an entry of the report's `agreement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// The claim id.
    pub id: String,
    /// How many repeats ran the claim.
    pub repeats: usize,
    /// The most frequent verdict with its strength (`confirmed, small`); on a tie, the one
    /// seen first.
    pub verdict: String,
    /// How many repeats gave `verdict`.
    pub agreeing: usize,
    /// Every repeat's verdict with its strength, in the order run.
    pub verdicts: Vec<String>,
    /// The effect (`ratio`) of every repeat, in the order run.
    pub ratios: Vec<f64>,
    /// Smallest, median and largest `ratio` across the repeats.
    pub ratio_spread: [f64; 3],
}

impl Agreement {
    /// Rule 4 over the repeats of claim `id`: `(verdict, ratio)` per repeat, in order.
    /// `None` for no repeats.
    pub fn of(id: &str, repeats: &[(&Verdict, f64)]) -> Option<Agreement> {
        let verdicts: Vec<String> = repeats.iter().map(|(v, _)| v.to_string()).collect();
        let ratios: Vec<f64> = repeats.iter().map(|(_, r)| *r).collect();
        let mut best: Option<(&String, usize)> = None;
        for v in &verdicts {
            let n = verdicts.iter().filter(|w| *w == v).count();
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((v, n));
            }
        }
        let (verdict, agreeing) = best?;
        let spread =
            Summary::from_samples(&ratios).map_or([f64::NAN; 3], |s| [s.min, s.median, s.max]);
        Some(Agreement {
            id: id.to_owned(),
            repeats: repeats.len(),
            verdict: verdict.clone(),
            agreeing,
            verdicts: verdicts.clone(),
            ratios,
            ratio_spread: spread,
        })
    }
}

/// `3/3 confirmed, small; ratio 1.12–1.15× (median 1.13×)`.
impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [lo, mid, hi] = self.ratio_spread;
        write!(
            f,
            "{}/{} {}; ratio {lo:.2}–{hi:.2}× (median {mid:.2}×)",
            self.agreeing, self.repeats, self.verdict
        )
    }
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

    /// A deterministic stream of uniform numbers in [0, 1) (a 64-bit LCG, Knuth's MMIX
    /// constants), so the synthetic rounds are the same on every run of the tests.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `k` rounds whose thread figure wanders with the machine (±20 %) and whose process
    /// figure is the thread figure times `ratio(i)`.
    fn rounds(k: usize, rng: &mut Lcg, ratio: impl Fn(usize, &mut Lcg) -> f64) -> [Vec<f64>; 2] {
        let mut p = Vec::new();
        let mut t = Vec::new();
        for i in 0..k {
            let thread = 10e-6 * (0.8 + 0.4 * rng.next());
            p.push(thread * ratio(i, rng));
            t.push(thread);
        }
        [p, t]
    }

    #[test]
    fn a_stable_effect_near_the_threshold_gets_the_same_verdict_every_time() {
        // The issue's `switch`: a ratio of 1.09–1.13 in every round of every run.
        let mut rng = Lcg(11);
        for _ in 0..200 {
            let [p, t] = rounds(10, &mut rng, |_, rng| 1.09 + 0.04 * rng.next());
            let effect = paired_rounds(&p, &t).unwrap();
            assert_eq!(grade(&effect), Verdict::Marginal, "{}", effect.explain());
            assert!(effect.low < 1.10 && effect.high > 1.10);
        }
        // The effect is stated with the verdict.
        let [p, t] = rounds(10, &mut rng, |_, _| 1.11);
        let text = explain(&paired_rounds(&p, &t).unwrap());
        assert!(text.starts_with("marginal: 1.11× (95 % interval"), "{text}");
        assert!(text.ends_with("10 rounds) straddles 1.10×"), "{text}");
    }

    #[test]
    fn drift_between_rounds_widens_the_interval() {
        let mut rng = Lcg(7);
        let [p, t] = rounds(10, &mut rng, |_, rng| 1.5 * (0.99 + 0.02 * rng.next()));
        let steady = paired_rounds(&p, &t).unwrap();
        // The process side drifts from 1.2× to 1.8× over the run; the mean ratio is the same.
        let [p, t] = rounds(10, &mut rng, |i, _| 1.2 + 0.6 * i as f64 / 9.0);
        let drifting = paired_rounds(&p, &t).unwrap();
        // Width on the log scale, where the interval is symmetric.
        let width = |e: &Effect| (e.high / e.low).ln();
        assert!(width(&drifting) > 2.0 * width(&steady), "{steady:?} vs {drifting:?}");
        assert_eq!(grade(&steady), Verdict::Confirmed(Size::Moderate));
        assert_eq!(drifting.rounds.len(), 10);
        // Pooling the drifting run's samples, the notch interval stays narrow: it cannot see
        // the drift, which is why the verdict is decided on rounds.
        let pooled_p: Vec<f64> =
            p.iter().flat_map(|&x| (0..100).map(move |j| x * (1.0 + j as f64 * 1e-4))).collect();
        let pooled_t: Vec<f64> =
            t.iter().flat_map(|&x| (0..100).map(move |j| x * (1.0 + j as f64 * 1e-4))).collect();
        let notch = cost_claim(
            &Summary::from_samples(&pooled_p).unwrap(),
            &Summary::from_samples(&pooled_t).unwrap(),
        );
        assert!(width(&drifting) > 2.0 * (notch.high / notch.low).ln());
    }

    #[test]
    fn a_sevenfold_effect_is_confirmed_strong() {
        let mut rng = Lcg(3);
        let [p, t] = rounds(10, &mut rng, |_, rng| 7.0 * (0.9 + 0.2 * rng.next()));
        let effect = paired_rounds(&p, &t).unwrap();
        assert!((effect.ratio - 7.0).abs() < 0.5, "{effect:?}");
        assert_eq!(grade(&effect), Verdict::Confirmed(Size::Strong));
        assert_eq!(grade(&effect).to_string(), "confirmed, strong");
        // Seen from the thread side, the same effect is the opposite.
        assert_eq!(grade(&effect.inverse()), Verdict::Refuted(Refutation::Opposite));
    }

    #[test]
    fn no_effect_is_refuted_negligible() {
        let mut rng = Lcg(5);
        for _ in 0..50 {
            let [p, t] = rounds(10, &mut rng, |_, rng| 0.98 + 0.04 * rng.next());
            let effect = paired_rounds(&p, &t).unwrap();
            assert_eq!(grade(&effect), Verdict::Refuted(Refutation::Negligible), "{effect:?}");
        }
    }

    #[test]
    fn grades_follow_the_table() {
        let e =
            |low: f64, high: f64| Effect { ratio: (low * high).sqrt(), low, high, rounds: vec![] };
        assert_eq!(grade(&e(1.12, 1.2)), Verdict::Confirmed(Size::Small));
        assert_eq!(grade(&e(1.3, 1.9)), Verdict::Confirmed(Size::Moderate));
        assert_eq!(grade(&e(2.0, f64::INFINITY)), Verdict::Confirmed(Size::Strong));
        assert_eq!(grade(&e(0.5, 0.8)), Verdict::Refuted(Refutation::Opposite));
        assert_eq!(grade(&e(0.95, 1.05)), Verdict::Refuted(Refutation::Negligible));
        assert_eq!(grade(&e(0.85, 1.0)), Verdict::Marginal);
        assert_eq!(grade(&e(0.5, 3.0)), Verdict::Marginal);
        assert_eq!(grade(&e(f64::NAN, 1.0)), Verdict::Marginal);
    }

    #[test]
    fn one_round_or_none_cannot_confirm() {
        let one = paired_rounds(&[5.0], &[1.0]).unwrap();
        assert!(one.high.is_infinite() && one.low == 0.0);
        assert_eq!(grade(&one), Verdict::Marginal);
        assert!(paired_rounds(&[], &[]).is_none());
        assert!(paired_rounds(&[1.0, f64::NAN], &[0.0, 1.0]).is_none());
    }

    #[test]
    fn round_medians_split_in_order() {
        assert_eq!(round_medians(&[1.0, 3.0, 10.0, 30.0, 100.0], 2), vec![3.0, 65.0]);
        assert_eq!(round_medians(&[1.0, 2.0], 0), Vec::<f64>::new());
    }

    #[test]
    fn clearly_higher_is_confirmed() {
        let c = cost_claim(&summary(90e-6, 0.2, 500), &summary(20e-6, 0.3, 500));
        assert_eq!(c.outcome, Outcome::ProcessCostsMore);
        assert_eq!(c.verdict(), Verdict::Confirmed(Size::Strong));
        assert!((c.ratio - 4.5).abs() < 1e-9);
        assert!(c.low > 1.0 && c.high > c.ratio && c.low < c.ratio);
        assert!(c.explain().contains("4.50×"));
    }

    #[test]
    fn clearly_lower_is_refuted_as_opposite() {
        let c = cost_claim(&summary(10.0, 0.1, 100), &summary(20.0, 0.1, 100));
        assert_eq!(c.outcome, Outcome::ThreadCostsMore);
        assert_eq!(c.verdict(), Verdict::Refuted(Refutation::Opposite));
    }

    #[test]
    fn small_but_significant_difference_is_negligible() {
        // 5 % apart with tight spreads over many samples: real, but below MIN_EFFECT.
        let c = cost_claim(&summary(1.05, 0.02, 1000), &summary(1.0, 0.02, 1000));
        assert_eq!(c.outcome, Outcome::NegligibleDifference);
        assert_eq!(c.verdict(), Verdict::Refuted(Refutation::Negligible));
        let c = cost_claim(&summary(1.0, 0.02, 1000), &summary(1.05, 0.02, 1000));
        assert_eq!(c.outcome, Outcome::NegligibleDifference);
    }

    #[test]
    fn large_ratio_in_noise_is_marginal() {
        // 30 % apart, but the spread is huge and there are few samples.
        let c = cost_claim(&summary(1.3, 1.5, 10), &summary(1.0, 1.5, 10));
        assert_eq!(c.outcome, Outcome::WithinNoise);
        assert_eq!(c.verdict(), Verdict::Marginal);
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
        let strong = Verdict::Confirmed(Size::Strong);
        let small = Verdict::Confirmed(Size::Small);
        let negligible = Verdict::Refuted(Refutation::Negligible);
        let opposite = Verdict::Refuted(Refutation::Opposite);
        assert_eq!(combine(&[("a", strong.clone()), ("b", small.clone())]), small);
        assert_eq!(combine(&[("a", opposite.clone())]), opposite);
        assert_eq!(combine(&[("a", opposite), ("b", negligible.clone())]), negligible);
        assert_eq!(combine(&[("a", Verdict::Marginal)]), Verdict::Marginal);
        assert_eq!(combine(&[]), Verdict::Marginal);
        let v = combine(&[
            ("on one core", strong),
            ("across cores", negligible),
            ("in a VM", Verdict::Marginal),
        ]);
        assert_eq!(
            v,
            Verdict::Depends {
                condition: "holds on one core (strong); not across cores (negligible); \
                            marginal in a VM"
                    .to_owned()
            }
        );
        assert_eq!(v.to_string(), "depends");
    }

    #[test]
    fn agreement_counts_the_most_frequent_verdict() {
        let small = Verdict::Confirmed(Size::Small);
        let a =
            Agreement::of("switch", &[(&small, 1.12), (&Verdict::Marginal, 1.10), (&small, 1.15)])
                .unwrap();
        assert_eq!((a.agreeing, a.repeats, a.verdict.as_str()), (2, 3, "confirmed, small"));
        assert_eq!(a.ratio_spread, [1.10, 1.12, 1.15]);
        assert_eq!(a.to_string(), "2/3 confirmed, small; ratio 1.10–1.15× (median 1.12×)");
        assert!(Agreement::of("x", &[]).is_none());
    }

    #[test]
    fn verdict_json_has_verdict_strength_and_condition() {
        let json = serde_json::to_string(&Verdict::Depends { condition: "x".into() }).unwrap();
        assert_eq!(json, r#"{"verdict":"depends","strength":null,"condition":"x"}"#);
        let strong = Verdict::Confirmed(Size::Strong);
        let json = serde_json::to_string(&strong).unwrap();
        assert_eq!(json, r#"{"verdict":"confirmed","strength":"strong"}"#);
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), strong);
        let bad = r#"{"verdict":"confirmed","strength":"opposite"}"#;
        assert!(serde_json::from_str::<Verdict>(bad).is_err());
    }
}
