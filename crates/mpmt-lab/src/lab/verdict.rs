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
//! grades each condition by rule 2. A condition is then **decided** (`confirmed` or
//! `refuted`) or **marginal**: its interval straddles a line, so its true effect may lie on
//! either side, and it may turn out either way. The combined verdict is the one that holds
//! *whichever way every marginal condition turns out*, and `marginal` when that way matters:
//!
//! | decided conditions | marginal ones | combined verdict |
//! |---|---|---|
//! | all confirm | none | `confirmed`, the weakest strength |
//! | all refute | none | `refuted`: `opposite` if every one is, else `negligible` |
//! | some confirm, some refute | any | `depends` (its condition names every condition) |
//! | all on one side, or none | at least one | `marginal` |
//!
//! The third row holds with marginal conditions because no way they could turn out removes
//! a confirmation and a refutation already measured. In the fourth, one outcome of the
//! marginal conditions makes the verdict uniform and another makes it `depends`, so the
//! claim is undecided. A nested `depends` (a condition combined from its own conditions)
//! counts as both a confirmation and a refutation.
//!
//! Why this rule, and not "`depends` when the words differ": with that rule a claim whose
//! headline condition sits on the 10 % line (the `switch` claim on one core, 1.08–1.11× from
//! run to run) was `depends` when a second condition was decided and `marginal` when that
//! one's interval happened to touch its own line, so the verdict changed from run to run
//! while no measured fact did. Under this rule a condition on the line makes the claim
//! `marginal` every time, unless the other conditions already disagree among themselves.
//! A marginal condition is counted as able to go either way even when the line it straddles
//! is `1/1.10` (between `negligible` and `opposite`, both refutations): rule 2 does not say
//! which line it straddles, and the rule stays conservative.
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
    if parts.is_empty() {
        return Verdict::Marginal;
    }
    let any_depends = parts.iter().any(|(_, v)| matches!(v, Verdict::Depends { .. }));
    let confirms = any_depends || parts.iter().any(|(_, v)| matches!(v, Verdict::Confirmed(_)));
    let refutes = any_depends || parts.iter().any(|(_, v)| matches!(v, Verdict::Refuted(_)));
    let marginal = parts.iter().any(|(_, v)| *v == Verdict::Marginal);
    if confirms && refutes {
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
        return Verdict::Depends { condition: clauses.join("; ") };
    }
    if marginal {
        return Verdict::Marginal;
    }
    if confirms {
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
    let all_opposite = parts.iter().all(|(_, v)| *v == Verdict::Refuted(Refutation::Opposite));
    Verdict::Refuted(if all_opposite { Refutation::Opposite } else { Refutation::Negligible })
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
pub(crate) mod tests;
