//! A claim's verdict under one named condition, for claims whose answer depends on the kind
//! of work (the `cpu` claim: native compute, Python under the GIL, address-space churn).
//!
//! Each [`Condition`] compares the wall times of the same batch on a thread pool and on a
//! process pool at the same worker count, round by round: the caller pairs the rounds with
//! rule 1 of [`super::verdict`] in the direction "threads take longer" (per round, thread
//! wall ÷ process wall), so the effect's ratio is the process pool's throughput over the
//! thread pool's and its interval the 95 % interval over rounds; [`grade`] (rule 2) decides:
//! `confirmed` exactly when processes are faster by at least
//! [`super::verdict::MIN_EFFECT`] beyond the interval, `marginal` when the interval straddles
//! that line, `refuted` otherwise.

use serde::{Deserialize, Serialize};

use super::verdict::{Effect, Verdict, grade};

/// Which kind of work a [`Condition`] measured. In JSON: `compute`, `python`,
/// `address_space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionName {
    /// Native CPU-bound work (SHA-256) with no shared state.
    Compute,
    /// Pure-Python CPU-bound work: threads serialised by the interpreter lock.
    Python,
    /// Mapping, touching and unmapping large blocks: threads share one address space.
    AddressSpace,
}

impl ConditionName {
    /// How the overall verdict names it, e.g. `for address-space churn`.
    pub fn phrase(self) -> &'static str {
        match self {
            ConditionName::Compute => "for native compute",
            ConditionName::Python => "in Python (GIL)",
            ConditionName::AddressSpace => "for address-space churn",
        }
    }
}

/// One condition's measured ratio and computed verdict. Field docs are its JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// `compute`, `python` or `address_space`.
    pub name: ConditionName,
    /// Process throughput ÷ thread throughput at the largest worker count (thread wall time
    /// ÷ process wall time of the same batch): above 1, processes are faster.
    pub ratio: f64,
    /// `[low, high]`: the ratio's 95 % interval over rounds (module docs); an unbounded
    /// `high` (a single round) is written `null`.
    #[serde(with = "unbounded")]
    pub interval: [f64; 2],
    /// `"verdict"` and `"strength"`: graded by rule 2 of the verdict module (`confirmed` when
    /// processes are faster by ≥ 10 % beyond the interval).
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Condition {
    /// Grades the effect "processes are faster" (module docs): per round, thread wall time
    /// over process wall time of the same batch.
    pub fn from_effect(name: ConditionName, effect: &Effect) -> Condition {
        Condition { name, ratio: effect.ratio, interval: effect.interval(), verdict: grade(effect) }
    }

    /// The label under which the overall verdict names it, e.g.
    /// `for address-space churn (processes 5.80× threads)`.
    pub fn label(&self) -> String {
        format!("{} (processes {:.2}× threads)", self.name.phrase(), self.ratio)
    }
}

/// (De)serialises `[low, high]` with a non-finite end as `null` (JSON has no infinity), read
/// back as infinity.
mod unbounded {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[f64; 2], s: S) -> Result<S::Ok, S::Error> {
        v.map(|x| x.is_finite().then_some(x)).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
        Ok(<[Option<f64>; 2]>::deserialize(d)?.map(|x| x.unwrap_or(f64::INFINITY)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lab::verdict::{Refutation, Size, paired_rounds};

    /// A condition from synthetic rounds: process wall `p` and thread wall `t` per round, with
    /// ±1 % of alternating jitter on the thread side.
    pub(crate) fn condition(name: ConditionName, p: f64, t: f64, rounds: usize) -> Condition {
        let thread: Vec<f64> =
            (0..rounds).map(|i| t * if i % 2 == 0 { 1.01 } else { 0.99 }).collect();
        let process = vec![p; rounds];
        Condition::from_effect(name, &paired_rounds(&thread, &process).expect("rounds"))
    }

    #[test]
    fn faster_processes_confirm_and_the_ratio_is_a_throughput_ratio() {
        // Threads take 6× as long: processes run 6× the work per second.
        let c = condition(ConditionName::AddressSpace, 0.1, 0.6, 8);
        assert!((c.ratio - 6.0).abs() < 0.01, "{c:?}");
        assert!(c.interval[0] > 1.0 && c.interval[0] < c.ratio && c.ratio < c.interval[1]);
        assert_eq!(c.verdict, Verdict::Confirmed(Size::Strong));
        assert_eq!(c.label(), "for address-space churn (processes 6.00× threads)");
    }

    #[test]
    fn equal_or_slower_processes_refute() {
        let same = condition(ConditionName::Compute, 1.0, 1.0, 8);
        assert_eq!(same.verdict, Verdict::Refuted(Refutation::Negligible));
        let slower = condition(ConditionName::Compute, 2.0, 1.0, 8);
        assert!(slower.ratio < 1.0);
        assert_eq!(slower.verdict, Verdict::Refuted(Refutation::Opposite));
    }

    #[test]
    fn json_has_name_ratio_interval_verdict_and_reads_back() {
        // One round: its spread is unknown, so the interval has no upper bound.
        let c = condition(ConditionName::Python, 1.0, 2.0, 1);
        assert!(c.interval[1].is_infinite());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["name"], "python");
        assert_eq!(v["verdict"], "marginal");
        assert!(v["ratio"].as_f64().is_some());
        assert!(v["interval"][0].as_f64().is_some() && v["interval"][1].is_null(), "{v}");
        let back: Condition = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let name = serde_json::to_value(ConditionName::AddressSpace).unwrap();
        assert_eq!(name, "address_space");
    }
}
