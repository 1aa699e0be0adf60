//! A claim's verdict under one named condition, for claims whose answer depends on the kind
//! of work (the `cpu` claim: native compute, Python under the GIL, address-space churn).
//!
//! Each [`Condition`] compares the wall times of the same batch on a thread pool and on a
//! process pool at the same worker count, with the cost rule of [`super::verdict`] applied to
//! the claim "threads take longer": [`cost_claim`] is handed the **thread** series as its
//! first ("higher") figure, so its ratio `thread wall ÷ process wall` is the process pool's
//! throughput over the thread pool's, its interval is that ratio's conservative 95 %
//! interval, and its verdict is `confirmed` exactly when processes are faster beyond noise
//! and by at least [`super::verdict::MIN_EFFECT`].

use serde::{Deserialize, Serialize};

use super::verdict::{CostComparison, Verdict, cost_claim};
use crate::measure::Summary;

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
    /// `[low, high]`: the ratio's conservative 95 % interval (module docs); an unbounded
    /// `high` (a process series whose notch exceeds its median) is written `null`.
    #[serde(with = "unbounded")]
    pub interval: [f64; 2],
    /// `"verdict"`: `confirmed` when processes are faster beyond noise and by ≥ 10 %,
    /// `refuted` otherwise.
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Condition {
    /// Applies the rule (module docs) to the wall times of one batch at the same worker count.
    pub fn from_walls(name: ConditionName, process: &Summary, thread: &Summary) -> Condition {
        let c: CostComparison = cost_claim(thread, process);
        Condition { name, ratio: c.ratio, interval: [c.low, c.high], verdict: c.verdict() }
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
mod tests {
    use super::*;
    use crate::lab::verdict::tests::summary;

    #[test]
    fn faster_processes_confirm_and_the_ratio_is_a_throughput_ratio() {
        // Threads take 6× as long: processes run 6× the work per second.
        let c = Condition::from_walls(
            ConditionName::AddressSpace,
            &summary(0.1, 0.05, 7),
            &summary(0.6, 0.05, 7),
        );
        assert!((c.ratio - 6.0).abs() < 1e-9);
        assert!(c.interval[0] > 1.0 && c.interval[0] < c.ratio && c.ratio < c.interval[1]);
        assert_eq!(c.verdict, Verdict::Confirmed);
        assert_eq!(c.label(), "for address-space churn (processes 6.00× threads)");
    }

    #[test]
    fn equal_or_slower_processes_refute() {
        let same = Condition::from_walls(
            ConditionName::Compute,
            &summary(1.0, 0.1, 7),
            &summary(1.0, 0.1, 7),
        );
        assert_eq!(same.verdict, Verdict::Refuted);
        let slower = Condition::from_walls(
            ConditionName::Compute,
            &summary(2.0, 0.05, 7),
            &summary(1.0, 0.05, 7),
        );
        assert!(slower.ratio < 1.0);
        assert_eq!(slower.verdict, Verdict::Refuted);
    }

    #[test]
    fn json_has_name_ratio_interval_verdict_and_reads_back() {
        // A process series whose notch exceeds its median: the interval has no upper bound.
        let c = Condition::from_walls(
            ConditionName::Python,
            &summary(1.0, 3.0, 3),
            &summary(2.0, 0.1, 7),
        );
        assert!(c.interval[1].is_infinite());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["name"], "python");
        assert_eq!(v["verdict"], "refuted");
        assert!(v["ratio"].as_f64().is_some());
        assert!(v["interval"][0].as_f64().is_some() && v["interval"][1].is_null(), "{v}");
        let back: Condition = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let name = serde_json::to_value(ConditionName::AddressSpace).unwrap();
        assert_eq!(name, "address_space");
    }
}
