//! Results as JSON: the lab report pretty-printed (a file people read), the `mpmt ipc` and
//! `mpmt run` reports as one line on stdout ([`to_line`]).
//!
//! The lab's JSON (`report.json`) is `serde_json`'s rendering of a
//! [`super::Document`]: the [`LabReport`] below plus, since schema version 2,
//! `schema_version`, `before_run` and `table` ([`super::document`] has the versions and the
//! migration of version 1, which [`to_json`] still writes for a bare [`LabReport`]). The doc
//! comments on the fields (and on those of `ClaimResult`, `Measurement`, `Summary`, `Machine`
//! and `table::Row`) are the schema. In short:
//!
//! ```text
//! { "schema_version": 2, "before_run": { "busy_pct", "load_avg", … } | null,
//!   "table": [ { "aspect", "aspect_ko", "article": [p, t], "article_ko": [p, t],
//!                "claims": [id], "cells": [ { "id", "status", "process", "thread",
//!                                             "verdict", "ratio" } ] } ],
//!   "machine": { "cpu_model", "logical_cores", "kernel", "os", "memory_bytes", "mpmt_version",
//!                "virtualization" },
//!   "quick": bool, "started_unix_s": int, "duration_s": float, "repeats": int,
//!   "claims": [ { "id", "claim", "aspect", "process", "thread",
//!                 "verdict": "confirmed" | "refuted" | "marginal" | "depends",
//!                 "strength": "strong" | "moderate" | "small" | "negligible" | "opposite" | null,
//!                 "condition"?: string,
//!                 "ratio", "interval": [low, high | null], "rounds"?: [float],
//!                 "repeat": int,
//!                 "quiet": { "busy_pct", "load_avg": [1m, 5m, 15m], "waited_s", "quiet",
//!                            "threshold_pct", "cpus": [int] } | null,
//!                 "summary", "warnings": [string],
//!                 "measurements": [ { "name", "unit": "seconds" | "bytes" | "count",
//!                                     "summary": { "n", "min", "max", "mean", "median",
//!                                                  "p25", "p75", "p99", "mad" },
//!                                     "conditions": [string], "samples": [float] } ],
//!                 "tables"?: [ { "title", "header", "rows" } ] } ],
//!   "agreement": [ { "id", "repeats", "verdict", "agreeing", "verdicts": [string],
//!                    "ratios": [float], "ratio_spread": [min, median, max] } ] }
//! ```
//!
//! Times are in seconds and sizes in bytes (SI base units), never pre-formatted.

use serde::Serialize;

use super::ReportError;
use crate::lab::LabReport;

/// Serialises `report` as pretty JSON with a trailing newline.
pub fn to_json(report: &LabReport) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// Serialises `report` as one line of JSON with a trailing newline (`mpmt ipc --json`, `mpmt
/// run --json`; the schema is the doc comments of the report's type).
pub fn to_line<T: Serialize>(report: &T) -> Result<String, ReportError> {
    let mut text = serde_json::to_string(report)?;
    text.push('\n');
    Ok(text)
}

/// Parses a report written by [`to_json`].
pub fn from_json(text: &str) -> Result<LabReport, ReportError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn has_machine_and_claims_fields() {
        let text = to_json(&fixture::report()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["machine"]["cpu_model"], "Test CPU @ 1GHz");
        assert_eq!(v["machine"]["logical_cores"], 2);
        assert_eq!(v["machine"]["kernel"], "6.1.0-test");
        let claims = v["claims"].as_array().unwrap();
        assert_eq!(claims[0]["id"], "create");
        assert_eq!(claims[0]["verdict"], "confirmed");
        assert_eq!(claims[0]["ratio"], 4.5);
        assert!(claims[0]["summary"].is_string());
        assert_eq!(claims[0]["measurements"][0]["unit"], "seconds");
        assert_eq!(claims[0]["measurements"][0]["summary"]["median"], 20e-6);
        assert_eq!(claims[0]["strength"], "strong");
        assert_eq!(claims[0]["interval"], serde_json::json!([4.1, 5.0]));
        assert_eq!(claims[1]["interval"], serde_json::json!([1.1, null]));
        assert_eq!(claims[1]["strength"], serde_json::Value::Null);
        assert_eq!(claims[1]["quiet"]["busy_pct"], 3.5);
        assert_eq!(claims[1]["quiet"]["load_avg"], serde_json::json!([0.2, 0.1, 0.05]));
        assert_eq!(claims[1]["repeat"], 1);
        assert_eq!(v["repeats"], 1);
        assert_eq!(claims[1]["verdict"], "depends");
        assert_eq!(claims[1]["condition"], "holds on one core; not on two cores");
    }

    #[test]
    fn round_trips() {
        let report = fixture::report();
        assert_eq!(from_json(&to_json(&report).unwrap()).unwrap(), report);
        assert!(from_json("{").is_err());
    }
}
