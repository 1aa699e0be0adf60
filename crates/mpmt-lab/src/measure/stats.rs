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
//! * **Student-t interval of a mean** ([`mean_interval`]): for `k ≥ 2` values with mean `m`
//!   and sample standard deviation `s` (divisor `k − 1`), `m ± t(0.975, k − 1)·s/√k`, the
//!   95 % interval of the mean when the values are independent draws of a roughly normal
//!   quantity. `t(0.975, ν)` is tabulated for `ν ≤ 30` (values of R's `qt(0.975, ν)`) and
//!   above that taken from the Cornish–Fisher expansion
//!   `t ≈ z + (z³ + z)/(4ν) + (5z⁵ + 16z³ + 3z)/(96ν²)`, `z = 1.959964` (error < 10⁻³ for
//!   `ν > 30`). Reference: Student, "The probable error of a mean", *Biometrika* 6(1), 1908;
//!   M. Abramowitz, I. A. Stegun, *Handbook of Mathematical Functions*, 26.7.5, 1964.

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

/// `t(0.975, ν)` for `ν = 1..=30`, as R's `qt(0.975, 1:30)` prints them.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5th percentile of Student's t distribution with `df ≥ 1` degrees of freedom (module
/// docs); infinite for `df = 0`, where no interval exists.
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T975[df - 1],
        _ => {
            let (z, v) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        }
    }
}

/// Mean of `values` and the half-width of its 95 % Student-t interval (module docs).
///
/// `None` for no values or a value that is not finite; one value has an infinite
/// half-width (its spread is unknown).
pub fn mean_interval(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() || values.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let k = values.len();
    let mean = values.iter().sum::<f64>() / k as f64;
    if k == 1 {
        return Some((mean, f64::INFINITY));
    }
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    Some((mean, t_975(k - 1) * (var / k as f64).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_r() {
        // R: qt(0.975, c(1, 9, 30, 40, 120)) = 12.706 2.262 2.042 2.021 1.980
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(9), 2.262);
        assert!((t_975(40) - 2.021).abs() < 1e-3);
        assert!((t_975(120) - 1.980).abs() < 1e-3);
        assert!(t_975(0).is_infinite());
        // Monotone decreasing towards z across the table's end.
        assert!(t_975(30) > t_975(31) && t_975(31) > 1.96);
    }

    #[test]
    fn mean_interval_of_known_values() {
        // R: t.test(c(1, 2, 3, 4))$conf.int = 0.4457397 4.5542603
        let (m, h) = mean_interval(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m, 2.5);
        assert!((h - 2.054_260).abs() < 1e-3, "{h}");
        assert!(mean_interval(&[2.0]).unwrap().1.is_infinite());
        assert!(mean_interval(&[]).is_none());
        assert!(mean_interval(&[1.0, f64::NAN]).is_none());
    }

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
