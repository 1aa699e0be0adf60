//! Robust summary statistics of a series of samples.
//!
//! A [`Summary`] holds the order statistics the lab reports for every measured series:
//! minimum, maximum, mean, median, the quartiles, the 99th percentile and the median
//! absolute deviation (MAD). Medians and quartiles are preferred over mean and standard
//! deviation because timing samples on a shared machine have a long right tail (preemption,
//! page faults, other jobs), which moves the mean but not the median.
//!
//! # Formulas
//!
//! * **Percentile** `p ∈ [0, 1]` of the sorted samples `x[0..n]`: linear interpolation
//!   between closest ranks, Hyndman & Fan (1996) *type 7*, the default of R and NumPy:
//!   `h = (n − 1)·p`, `Q(p) = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋])`.
//!   Reference: R. J. Hyndman, Y. Fan, "Sample Quantiles in Statistical Packages",
//!   *The American Statistician* 50(4), 1996.
//! * **MAD**: `median(|xᵢ − median(x)|)`, unscaled (multiply by 1.4826 to estimate a
//!   normal standard deviation). Reference: F. R. Hampel, "The influence curve and its role
//!   in robust estimation", *JASA* 69(346), 1974.
//! * **Relative spread**: interquartile range over median, `(Q(0.75) − Q(0.25)) / Q(0.5)`.
//! * **Median notch** (used by [`crate::lab::verdict`]): `median ± 1.58·IQR/√n`, an
//!   approximate 95 % interval for the median. Reference: R. McGill, J. W. Tukey,
//!   W. A. Larsen, "Variations of Box Plots", *The American Statistician* 32(1), 1978.

use serde::{Deserialize, Serialize};

/// Order statistics of one series of samples, all in the series' unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean; reported for completeness, decisions use the median.
    pub mean: f64,
    /// Median (50th percentile, type 7).
    pub median: f64,
    /// First quartile (25th percentile, type 7).
    pub p25: f64,
    /// Third quartile (75th percentile, type 7).
    pub p75: f64,
    /// 99th percentile (type 7): the tail a latency-sensitive user sees.
    pub p99: f64,
    /// Median absolute deviation from the median, unscaled.
    pub mad: f64,
}

impl Summary {
    /// Summarises `samples`. Returns `None` when there are no samples or one of them is not
    /// finite (NaN or infinite), since no order statistic is meaningful then.
    pub fn from_samples(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = percentile_sorted(&sorted, 0.5);
        let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            median,
            p25: percentile_sorted(&sorted, 0.25),
            p75: percentile_sorted(&sorted, 0.75),
            p99: percentile_sorted(&sorted, 0.99),
            mad: percentile_sorted(&deviations, 0.5),
        })
    }

    /// Interquartile range `p75 − p25`.
    pub fn iqr(&self) -> f64 {
        self.p75 - self.p25
    }

    /// Relative spread `IQR / median`; 0 when the median is 0.
    pub fn relative_spread(&self) -> f64 {
        if self.median == 0.0 { 0.0 } else { self.iqr() / self.median.abs() }
    }

    /// Half-width of the McGill–Tukey–Larsen notch, `1.58·IQR/√n`: the median's approximate
    /// 95 % confidence half-interval.
    pub fn notch(&self) -> f64 {
        1.58 * self.iqr() / (self.n as f64).sqrt()
    }
}

/// Percentile `p ∈ [0, 1]` (clamped) of already sorted, non-empty `sorted`, by Hyndman & Fan
/// type 7 linear interpolation. Returns NaN for an empty slice.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let h = last as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_nan_gives_none() {
        assert!(Summary::from_samples(&[]).is_none());
        assert!(Summary::from_samples(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn single_sample() {
        let s = Summary::from_samples(&[3.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.median, s.p99, s.mad), (1, 3.0, 3.0, 3.0, 3.0, 0.0));
    }

    #[test]
    fn type7_matches_r_and_numpy() {
        // R: quantile(1:10, c(.25,.5,.75,.99), type = 7) = 3.25 5.5 7.75 9.91
        let xs: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Summary::from_samples(&xs).unwrap();
        assert!((s.p25 - 3.25).abs() < 1e-12);
        assert!((s.median - 5.5).abs() < 1e-12);
        assert!((s.p75 - 7.75).abs() < 1e-12);
        assert!((s.p99 - 9.91).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.mean), (1.0, 10.0, 5.5));
        // R: mad(1:10, constant = 1) = 2.5
        assert!((s.mad - 2.5).abs() < 1e-12);
        assert!((s.relative_spread() - 4.5 / 5.5).abs() < 1e-12);
    }

    #[test]
    fn median_resists_outlier() {
        let s = Summary::from_samples(&[1.0, 1.0, 1.0, 1.0, 1000.0]).unwrap();
        assert_eq!(s.median, 1.0);
        assert_eq!(s.mad, 0.0);
        assert!(s.mean > 100.0);
    }

    #[test]
    fn percentile_clamps() {
        assert_eq!(percentile_sorted(&[1.0, 2.0], -1.0), 1.0);
        assert_eq!(percentile_sorted(&[1.0, 2.0], 2.0), 2.0);
        assert!(percentile_sorted(&[], 0.5).is_nan());
    }
}
