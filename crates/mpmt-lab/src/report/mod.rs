//! Rendering a [`LabReport`] for people and for programs.
//!
//! * `terminal.rs`: the article's comparison table (section 3) filled with measured cells,
//!   a verdict and ratio per claim, one summary line per claim and the machine line.
//! * `json.rs`: the report as pretty JSON; the doc comments of [`LabReport`],
//!   [`crate::lab::ClaimResult`], [`crate::lab::Measurement`], [`crate::measure::Summary`]
//!   and [`crate::measure::Machine`] are its schema.
//!
//! Both are pure functions of the report, behind one [`Exporter`] trait so the CLI can pick
//! a format by name.

pub mod json;
pub mod terminal;

use crate::lab::LabReport;

/// Errors of the report layer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Serialising to JSON failed.
    #[error("cannot serialise the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Turns a report into text in one format.
pub trait Exporter {
    /// Renders `report`.
    fn export(&self, report: &LabReport) -> Result<String, ReportError>;
}

/// The terminal table ([`terminal::render`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

/// Pretty JSON ([`json::to_json`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Exporter for Terminal {
    fn export(&self, report: &LabReport) -> Result<String, ReportError> {
        Ok(terminal::render(report))
    }
}

impl Exporter for Json {
    fn export(&self, report: &LabReport) -> Result<String, ReportError> {
        json::to_json(report)
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A hand-built report: a test seam for the renderers, not lab data.
    use crate::lab::{ClaimResult, LabReport, Measurement, Verdict};
    use crate::measure::{Machine, Unit};

    pub(crate) fn report() -> LabReport {
        let m = |name: &str, xs: &[f64]| {
            Measurement::new(name, Unit::Seconds, xs.to_vec(), vec!["pinned".into()]).unwrap()
        };
        LabReport {
            machine: Machine {
                cpu_model: "Test CPU @ 1GHz".into(),
                logical_cores: 2,
                kernel: "6.1.0-test".into(),
                os: "linux x86_64".into(),
                memory_bytes: 1 << 30,
                mpmt_version: "0.1.0".into(),
            },
            quick: true,
            started_unix_s: 1_700_000_000,
            duration_s: 3.5,
            claims: vec![
                ClaimResult {
                    id: "create".into(),
                    claim: "Creating a process costs more than creating a thread (1.4, 3).".into(),
                    aspect: "Creation cost".into(),
                    process: "fork+wait 90.0 µs [85.0 µs–101 µs]".into(),
                    thread: "spawn+join 20.0 µs [18.0 µs–22.0 µs]".into(),
                    verdict: Verdict::Confirmed,
                    ratio: 4.5,
                    summary: "fork takes 4.5× as long as a thread.".into(),
                    measurements: vec![m("spawn+join", &[18e-6, 20e-6, 22e-6])],
                    warnings: vec![],
                    tables: vec![],
                },
                ClaimResult {
                    id: "switch".into(),
                    claim: "A context switch between processes costs more (1.4, 2.4, 3).".into(),
                    aspect: "Context-switch cost".into(),
                    process: "1 core: 1.78 µs".into(),
                    thread: "1 core: 1.43 µs".into(),
                    verdict: Verdict::Depends {
                        condition: "holds on one core; not on two cores".into(),
                    },
                    ratio: 1.24,
                    summary: "On one core processes take 1.24×.".into(),
                    measurements: vec![],
                    warnings: vec!["cross-core wake-ups dominate".into()],
                    tables: vec![crate::lab::DetailTable {
                        title: "isolation matrix".into(),
                        header: vec!["fault".into(), "thread".into()],
                        rows: vec![vec!["abort".into(), "process died".into()]],
                    }],
                },
            ],
        }
    }
}
