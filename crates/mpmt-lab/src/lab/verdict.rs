//! The computed decision rules that turn measurements into verdicts.
//!
//! No experiment states its verdict; it hands its measurements to the rules here, and the
//! rules are pure functions of those numbers. Four rules, applied in this order, and a
//! fifth for the one claim that is not a comparison of two models (`advice`):
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
//! 4. One run cannot see the variation **between runs** (the same effect measured again an
//!    hour later), so that component of variance is added as a stated constant, the
//!    two-level model of Kalibera & Jones: the variance of a run's log effect is
//!    `σ²_round/k + σ²_run`, whose first term the rounds estimate and whose second
//!    ([`DRIFT`] = 2 %, the standard deviation of a run's log effect between runs) is added
//!    in quadrature: half-width `h = √(h_t² + (1.96·DRIFT)²)` on the log scale, where `h_t`
//!    is the t half-width of step 3. The interval is thus never narrower than `R ×÷ 1.04`.
//!    [`DRIFT`] is the largest between-run spread measured on the project's machines: the
//!    `switch` one-core ratio 1.09, 1.10, 1.11, 1.13, 1.09 in five idle runs (sd of the
//!    logs 1.6 %) and, in three idle `--quick` runs, `create` 8.50, 8.50, 8.67×, `switch`
//!    1.14, 1.13, 1.12×, `memory` 1.66, 1.65, 1.64× (sd 1.1 %, 0.9 %, 0.6 %), rounded up. An
//!    effect closer than about 4 % to a line is therefore `marginal` in every run, instead
//!    of confirmed in the runs where the rounds happened to agree (the `switch` one-core
//!    ratio 1.14× [1.107–1.174] beside 1.13× [1.098–1.165] under the former ±3 % floor).
//!
//! References: P. J. Fleming, J. J. Wallace, "How not to lie with statistics: the correct
//! way to summarize benchmark results", *CACM* 29(3), 1986; T. Kalibera, R. Jones,
//! "Rigorous benchmarking in reasonable time", *ISMM* 2013; Student, *Biometrika* 6(1), 1908.
//!
//! # Rule 2: the graded verdict ([`grade`])
//!
//! The effect `R` with interval `[lo, hi]` is stated in the claim's direction (`R > 1`
//! supports the claim). With `m = MIN_EFFECT = 10 %`, the line the claim must clear is
//! `1 + m`; a second line, `1/(1 + m)`, only grades a refutation:
//!
//! | interval | verdict | strength |
//! |---|---|---|
//! | `lo ≥ 1 + m` | `confirmed` | `lo ≥ 2`: `strong`; `lo ≥ 1.25`: `moderate`; else `small` |
//! | `hi ≤ 1/(1 + m)` | `refuted` | `opposite` |
//! | `hi ≤ 1 + m` otherwise | `refuted` | `negligible` |
//! | `lo < 1 + m < hi` | `marginal` | none (the summary states `R` and the interval) |
//!
//! Every strength is the weakest grade the whole interval supports, "at least this strong,
//! with 95 % confidence": a confirmation is graded on the interval's lower end, and a
//! refutation is `opposite` only when the whole interval lies beyond `1/(1 + m)`, else
//! `negligible` (no effect of 10 % in the claim's direction; the opposite not shown).
//! `marginal` is the honest answer for an effect that sits on the 10 % line: instead of a
//! coin flip between `confirmed` and `refuted` from run to run, the same `marginal` with
//! the effect stated every time. An interval such as `[0.87, 1.03]` straddles only the line
//! between two refutations: the claim is refuted whichever side the effect lies on, so it
//! is `refuted, negligible`, not `marginal` (which made the `cpu` claim's native-compute
//! condition, 0.95–0.96× in two idle runs, undecided for no reason).
//!
//! # Rule 3: combining conditions ([`combine`])
//!
//! An experiment measured under several conditions (one core vs two cores, fork vs exec)
//! grades each condition by rule 2. A condition is then **decided** (`confirmed` or
//! `refuted`) or **marginal**. The first condition is the claim's **main** condition: the
//! article's claim in its own words (the switch on one core, process creation by `fork`,
//! the widest pool's memory, wall time for I/O); the others are **secondary**, measured to
//! say where the claim stops holding. The combined verdict:
//!
//! | decided conditions | main condition | combined verdict |
//! |---|---|---|
//! | some confirm, some refute | any | `depends` (its condition names every condition) |
//! | all on one side, or none | decided | the main condition's verdict and strength |
//! | all on one side, or none | marginal | `marginal` |
//!
//! A secondary condition thus changes the verdict only when it decides the opposite of
//! the main one (or of another secondary) clearly, its whole interval on the other side of
//! the 10 % line; a marginal secondary condition is reported beside the verdict and does
//! not touch it, and neither does a secondary's strength. A nested `depends` (a condition
//! combined from its own conditions) counts as both a confirmation and a refutation.
//!
//! Why this rule. The former rule made a claim `marginal` whenever any of its conditions
//! was marginal and the decided ones agreed, so a claim with four conditions (`starvation`,
//! `io`, `race`, `memory`) flipped between `marginal` and its decided verdict as soon as
//! any one condition's interval touched a line, and took the weakest strength of all its
//! conditions, so it flipped with the least stable of them: in three idle `--quick` runs,
//! `memory` went `marginal`, `confirmed`, `marginal` while its main condition (8 workers,
//! 1.64–1.66×, interval at least 1.45–1.86×) was `confirmed, moderate` in all three, the
//! flips coming from the one-worker pool (1.08–1.16× per round, on the line). Under this
//! rule a claim is as stable as its main condition, plus any secondary condition that is
//! decided against it; a main condition on the line still makes the claim `marginal`
//! every time.
//!
//! # Rule 4: agreement across repeats ([`Agreement`])
//!
//! `mpmt lab --repeat N` runs each claim `N` times; per claim the report gives the most
//! frequent verdict with its strength and how many repeats gave it (`3/3 confirmed, small`),
//! and the spread of the effect `R` across repeats (min, median, max).
//!
//! # Rule 5: the `advice` claim ([`advice_effect`], [`advice`])
//!
//! The `advice` claim compares the advisor's choice with the best configuration of a sweep,
//! per workload of a suite ([`crate::advise::check`]), as `ρ = recommended ÷ best`
//! throughput (1 when the advice was the best); the lines are the bar for advice,
//! "within 10 % of the best on every workload".
//!
//! 1. **Per workload, rule 1 over the sweep's passes.** The sweep measures its
//!    configurations in interleaved passes (2 in `--quick`, 3 in a full run), and the
//!    recommendation and the best (the highest median among the configurations measured in
//!    every pass) have a figure from every pass. Pass `i` gives the paired ratio
//!    `ρᵢ = recᵢ / bestᵢ`; the workload's `ρ` is their geometric mean with the t interval
//!    over `ln ρᵢ` and the [`DRIFT`] term ([`paired_rounds`]). When the recommendation is
//!    the best, every `ρᵢ` is 1 and the interval is the drift floor `[0.96, 1.04]`: the rule
//!    does not ask whether a configuration dropped after the first pass would have won later.
//! 2. **Over the suite**, the claim needs every workload within 10 %, so its effect is
//!    `[min lo, min hi]` with the point `min ρ` (which lies inside it): the low end is below
//!    0.90 as soon as one workload's is, the high end below 0.75 only when one workload's
//!    whole interval is. The worst workload is named by its point, not by its high end: a
//!    workload whose advice was the best (`ρ = 1`, `[0.96, 1.04]`) has a lower high end than
//!    one at 0.87 measured in two disagreeing passes (`[0.3, 2.5]`).
//! 3. **Graded like rule 2**, on the interval, with the strength from the point:
//!
//! | interval of the suite | verdict |
//! |---|---|
//! | `lo ≥ 0.90` | `confirmed`: `strong` when `ρ ≥ 0.95`, else `moderate` |
//! | `hi < 0.75` | `refuted, opposite`: the advice cost a quarter of the best somewhere |
//! | otherwise, or not finite (nothing measured) | `marginal` |
//!
//! Why. The former rule graded the smallest point ratio alone, `[ρ, ρ]`, and flipped
//! between runs: in three idle `--quick` runs `marginal` 0.88, `marginal` 0.82 and `refuted`
//! 0.70, the last from loopback TCP's thread ×64 at 8,560/s against thread ×32 at
//! 12,249/s: two single figures of a 1-second workload decided the claim. With two passes,
//! `t(0.975, 1)` = 12.7 makes a workload's interval wide unless its passes agree, so a quick
//! run is `refuted` only for a miss that both passes show (0.5 is refuted when they agree
//! within about 6 %), and `confirmed` only where the advice was the best or the passes
//! agree closely; otherwise `marginal`, with `ρ` stated. Simulated (the tests), a pair
//! 3 % apart whose figures each stray by up to ±20 %: the point rule gave `refuted` in
//! 7 % of runs and `confirmed` in 66 %, this rule `marginal` in 95 % (two passes), the rest
//! `confirmed`, `refuted` about once in 4,000. Measured in three `--quick` runs interleaved
//! with three of the former build (busy machine): `marginal` 0.85 [0.32–1.04], 0.87
//! [0.42–1.02], 0.83 [0.28–1.03], where the former rule gave `marginal` 0.88, 0.87 and
//! `confirmed` 0.91.
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

/// Standard deviation of a run's log effect between runs of the same claim on an idle
/// machine (rule 1, step 4): 2 %, added in quadrature to the interval over rounds.
pub const DRIFT: f64 = 0.02;

/// The 0.975 quantile of the standard normal distribution, for the between-run component.
const Z_975: f64 = 1.96;

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
    let (mean, within) = mean_interval(&logs)?;
    let half = within.hypot(Z_975 * DRIFT);
    Some(Effect { ratio: mean.exp(), low: (mean - half).exp(), high: (mean + half).exp(), rounds })
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
    } else if hi <= up {
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
        Verdict::Refuted(Refutation::Negligible) if effect.low >= 1.0 / (1.0 + MIN_EFFECT) => {
            "lies within ±10 %"
        }
        Verdict::Refuted(Refutation::Negligible) => "lies below 1.10× (the opposite not shown)",
        Verdict::Refuted(Refutation::Opposite) => "lies below 1/1.10×: the opposite holds",
        _ => "straddles 1.10×",
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

/// Rule 3 (module docs): combines per-condition verdicts `(condition, verdict)` into one;
/// the first is the claim's main condition.
///
/// An empty list is [`Verdict::Marginal`]: nothing was decided.
pub fn combine(parts: &[(&str, Verdict)]) -> Verdict {
    let Some((_, main)) = parts.first() else { return Verdict::Marginal };
    let any_depends = parts.iter().any(|(_, v)| matches!(v, Verdict::Depends { .. }));
    let confirms = any_depends || parts.iter().any(|(_, v)| matches!(v, Verdict::Confirmed(_)));
    let refutes = any_depends || parts.iter().any(|(_, v)| matches!(v, Verdict::Refuted(_)));
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
    main.clone()
}

/// Rule 5's line for `confirmed`: the whole interval within 10 % of the best.
pub const ADVICE_CONFIRMED: f64 = 0.90;

/// Rule 5's line for `strong`, on the point.
pub const ADVICE_STRONG: f64 = 0.95;

/// Rule 5's line for `refuted, opposite`: the whole interval a quarter or more below the best.
pub const ADVICE_REFUTED: f64 = 0.75;

/// Rule 5 (module docs), step 2: the `advice` claim's effect from each workload's paired
/// effect recommended ÷ best (step 1): the smallest point, with the interval from the
/// smallest low end to the smallest high end. `None` for no workloads.
pub fn advice_effect(workloads: &[Effect]) -> Option<Effect> {
    let min = |f: fn(&Effect) -> f64| workloads.iter().map(f).reduce(f64::min);
    Some(Effect {
        ratio: min(|e| e.ratio)?,
        low: min(|e| e.low)?,
        high: min(|e| e.high)?,
        rounds: Vec::new(),
    })
}

/// Rule 5 (module docs), step 3: the `advice` claim's verdict from the suite's effect
/// ([`advice_effect`]).
pub fn advice(effect: &Effect) -> Verdict {
    let (point, lo, hi) = (effect.ratio, effect.low, effect.high);
    if !point.is_finite() || lo.is_nan() || hi.is_nan() {
        Verdict::Marginal
    } else if lo >= ADVICE_CONFIRMED {
        Verdict::Confirmed(if point >= ADVICE_STRONG { Size::Strong } else { Size::Moderate })
    } else if hi < ADVICE_REFUTED {
        // Not "negligible" (no effect the claim's way): the advice cost a quarter or more
        // of the best throughput, so the opposite of the claim holds.
        Verdict::Refuted(Refutation::Opposite)
    } else {
        Verdict::Marginal
    }
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
