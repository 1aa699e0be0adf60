//! Bimodality of a latency series: does it fall in two clusters, and where are they?
//!
//! A hand-off that spins for a while and then sleeps (crossbeam's channel, the shm ring) has
//! two costs: the partner is met while it spins (about a microsecond), or it has gone to
//! sleep and must be woken (a futex wake-up, about 25 µs across the cores of a small VM). A
//! series of such round trips is then not "noisy" around one value: it is a mixture of two,
//! and its median flips between them from run to run. [`detect`] names that case, so a
//! report can say "bimodal: spins or parks" with both modes and their shares, and a verdict
//! can compare the mode that matches each endpoint's wake mechanism instead of a median that
//! is a coin flip.
//!
//! # Method
//!
//! 1. Work on `ln x`: the modes are a ratio apart (×20–×40), and a log scale makes a
//!    multiplicative spread around each mode symmetric.
//! 2. **Best two-cluster split** of the sorted log-samples: the split point `k` minimising the
//!    within-cluster sum of squares `Σ_{i<k}(yᵢ−ȳ_L)² + Σ_{i≥k}(yᵢ−ȳ_R)²`, which for ordered
//!    one-dimensional data is the exact optimal two-group partition (W. D. Fisher, "On
//!    grouping for maximum homogeneity", *JASA* 53(284), 1958; the same criterion as
//!    N. Otsu's threshold, *IEEE Trans. SMC* 9(1), 1979). With prefix sums of `y` and `y²`
//!    every split is scored in O(1), so the search is O(n) after the sort. Only splits that
//!    leave each cluster at least [`MIN_SHARE`] of the samples are considered, so a handful
//!    of outliers cannot claim the split.
//! 3. The split is **bimodal** when all of these hold:
//!    * at least [`MIN_SAMPLES`] samples (fewer cannot show two clusters);
//!    * each cluster holds at least [`MIN_SHARE`] of them (a thinner cluster is a tail, which
//!      the p99 reports);
//!    * the slow cluster's median is at least [`MIN_RATIO`] × the fast one's (closer modes
//!      are cache or frequency effects, not "spins or parks");
//!    * the clusters are separated: Ashman's `D = |μ₁ − μ₂| / √((σ₁² + σ₂²)/2) ≥`
//!      [`MIN_SEPARATION`] on the log-samples (K. M. Ashman, C. M. Bird, S. E. Zepf,
//!      "Detecting bimodality in astronomical datasets", *AJ* 108(6), 1994). Ashman's
//!      threshold of 2 is for fitted mixture components; a hard split underestimates each
//!      cluster's σ (it cuts the tails off), and one normal distribution split at its mean
//!      already gives `D = 2·√(2/π)/√(1 − 2/π) ≈ 2.65` whatever its width, so the bar here
//!      is 4, which one normal or a log-uniform spread (`D = √12 ≈ 3.46`) never reaches.

use serde::{Deserialize, Serialize};

/// Fewest samples in which two modes are looked for.
pub const MIN_SAMPLES: usize = 20;
/// Smallest share of the samples each mode must hold.
pub const MIN_SHARE: f64 = 0.10;
/// Smallest ratio of the slow mode's median to the fast mode's.
pub const MIN_RATIO: f64 = 3.0;
/// Smallest Ashman's D between the two clusters of log-samples (module docs).
pub const MIN_SEPARATION: f64 = 4.0;

/// One cluster of a bimodal series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// Median of the samples in this cluster, in the series' unit.
    pub median: f64,
    /// Share of all samples in this cluster, 0..1.
    pub share: f64,
    /// Number of samples in this cluster.
    pub n: usize,
}

/// The two clusters of a bimodal series (see [`detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Modes {
    /// The cluster of small values (a partner met while it spins).
    pub fast: Mode,
    /// The cluster of large values (a partner that had to be woken).
    pub slow: Mode,
    /// The largest sample of the fast cluster: a sample belongs to it iff it is at most this.
    pub threshold: f64,
    /// Ashman's D between the clusters of log-samples (module docs).
    pub separation: f64,
}

/// Which of the two modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// The cluster of small values.
    Fast,
    /// The cluster of large values.
    Slow,
}

impl Modes {
    /// The mode `which`.
    pub fn get(&self, which: Which) -> &Mode {
        match which {
            Which::Fast => &self.fast,
            Which::Slow => &self.slow,
        }
    }

    /// The samples of `samples` (the series the modes were detected in) that belong to the
    /// mode `which`, in their order.
    pub fn members(&self, samples: &[f64], which: Which) -> Vec<f64> {
        samples
            .iter()
            .copied()
            .filter(|&x| (x <= self.threshold) == (which == Which::Fast))
            .collect()
    }
}

/// The two modes of `samples`, if it is bimodal by the rules of the module docs; `None` for
/// one mode, too few samples, or a sample that is not finite and positive.
pub fn detect(samples: &[f64]) -> Option<Modes> {
    let n = samples.len();
    if n < MIN_SAMPLES || samples.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let logs: Vec<f64> = sorted.iter().map(|x| x.ln()).collect();
    // prefix[i] = (Σ y, Σ y²) over logs[..i].
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push((0.0f64, 0.0f64));
    for &y in &logs {
        let (s1, s2) = prefix[prefix.len() - 1];
        prefix.push((s1 + y, s2 + y * y));
    }
    // Sum of squares about the mean, and the mean, of logs[a..b].
    let cluster = |a: usize, b: usize| {
        let m = (b - a) as f64;
        let (s1, s2) = (prefix[b].0 - prefix[a].0, prefix[b].1 - prefix[a].1);
        ((s2 - s1 * s1 / m).max(0.0), s1 / m)
    };
    let least = ((MIN_SHARE * n as f64).ceil() as usize).max(1);
    let (k, _) = (least..=n - least)
        .map(|k| (k, cluster(0, k).0 + cluster(k, n).0))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    let ((ss_fast, mean_fast), (ss_slow, mean_slow)) = (cluster(0, k), cluster(k, n));
    let pooled = (ss_fast / k as f64 + ss_slow / (n - k) as f64) / 2.0;
    let separation = if pooled > 0.0 {
        (mean_slow - mean_fast) / pooled.sqrt()
    } else if mean_slow > mean_fast {
        f64::INFINITY
    } else {
        0.0
    };
    let mode = |part: &[f64]| Mode {
        median: crate::measure::stats::percentile_sorted(part, 0.5),
        share: part.len() as f64 / n as f64,
        n: part.len(),
    };
    let (fast, slow) = (mode(&sorted[..k]), mode(&sorted[k..]));
    let bimodal = slow.median >= MIN_RATIO * fast.median && separation >= MIN_SEPARATION;
    bimodal.then_some(Modes { fast, slow, threshold: sorted[k - 1], separation })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic standard-normal stream (splitmix64, then Box–Muller).
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// `n` samples around `median` with a log-normal spread of `sigma`.
    fn around(g: &mut Normal, median: f64, sigma: f64, n: usize) -> Vec<f64> {
        (0..n).map(|_| median * (sigma * g.next()).exp()).collect()
    }

    #[test]
    fn one_mode_is_not_bimodal() {
        let mut g = Normal(1);
        assert_eq!(detect(&around(&mut g, 1.3e-6, 0.05, 2000)), None);
        // The same value throughout: nothing to split.
        assert_eq!(detect(&[2e-6; 100]), None);
    }

    #[test]
    fn two_modes_forty_times_apart_are_found_with_their_shares() {
        let mut g = Normal(2);
        let mut samples = around(&mut g, 1.3e-6, 0.1, 700);
        samples.extend(around(&mut g, 52e-6, 0.1, 300));
        // Interleaved, as a run that spins and parks alternately would record them.
        samples.sort_by_key(|a| a.to_bits() % 7);
        let modes = detect(&samples).expect("bimodal");
        assert!((modes.fast.median / 1.3e-6 - 1.0).abs() < 0.05, "{modes:?}");
        assert!((modes.slow.median / 52e-6 - 1.0).abs() < 0.05, "{modes:?}");
        assert_eq!((modes.fast.n, modes.slow.n), (700, 300));
        assert!((modes.fast.share - 0.7).abs() < 1e-12 && (modes.slow.share - 0.3).abs() < 1e-12);
        assert!(modes.separation > 20.0, "{modes:?}");
        let fast = modes.members(&samples, Which::Fast);
        let slow = modes.members(&samples, Which::Slow);
        assert_eq!((fast.len(), slow.len()), (700, 300));
        assert!(fast.iter().all(|&x| x < 10e-6) && slow.iter().all(|&x| x > 10e-6));
        assert_eq!(modes.get(Which::Slow), &modes.slow);
    }

    #[test]
    fn noise_around_one_mode_is_not_bimodal() {
        let mut g = Normal(3);
        // A very wide log-normal: its best split has D ≈ 2.65 whatever the width.
        assert_eq!(detect(&around(&mut g, 1e-6, 1.0, 5000)), None);
        // A log-uniform spread over 0.5–2 µs: halves only 2× apart, D = √12.
        let uniform: Vec<f64> =
            (0..1000).map(|i| 1e-6 * 4f64.powf(i as f64 / 999.0) / 2.0).collect();
        assert_eq!(detect(&uniform), None);
        // A thin slow tail (5 %) is a tail, not a mode.
        let mut tail = around(&mut g, 1e-6, 0.05, 950);
        tail.extend(around(&mut g, 40e-6, 0.05, 50));
        assert_eq!(detect(&tail), None);
    }

    #[test]
    fn too_few_or_invalid_samples_are_not_judged() {
        let mut two = vec![1e-6; 10];
        two.extend([40e-6; 9]);
        assert_eq!(detect(&two), None);
        two.push(40e-6);
        assert!(detect(&two).is_some());
        two.push(0.0);
        assert_eq!(detect(&two), None);
        two.pop();
        two.push(f64::NAN);
        assert_eq!(detect(&two), None);
    }
}
