//! Rendering every typed result (`mpmt lab`, `mpmt ipc`, `mpmt run`) for people and for
//! programs, behind one [`Exporter`] trait so the CLI picks a format and never formats
//! itself.
//!
//! * [`terminal`]: text, one pure function per result (the lab's comparison table, the ipc
//!   tables, the run's figures), and the banner and progress lines around them;
//! * [`json`]: the same results as JSON; the doc comments of [`LabReport`], [`IpcReport`]
//!   and [`RunReport`] (and their parts) are the schema.
//!
//! This is the top layer of the crate: it reads the lab's and the instruments' results and
//! nothing below imports it.

pub mod json;
pub mod terminal;

use crate::bench::dispatch::DispatchReport;
use crate::bench::ipc::IpcReport;
use crate::bench::workload::RunReport;
use crate::lab::LabReport;

/// Errors of the report layer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Serialising to JSON failed.
    #[error("cannot serialise the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A typed result to render.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    /// A lab run (`mpmt lab`).
    Lab(&'a LabReport),
    /// An IPC benchmark run (`mpmt ipc`).
    Ipc(&'a IpcReport),
    /// A workload run (`mpmt run`).
    Run(&'a RunReport),
    /// A dispatch benchmark run (`mpmt bench dispatch`).
    Dispatch(&'a DispatchReport),
}

/// Turns a report into text in one format.
pub trait Exporter {
    /// Renders `report` (the text ends with a newline).
    fn export(&self, report: Report<'_>) -> Result<String, ReportError>;
}

/// Text for a terminal ([`terminal`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

/// JSON ([`json`]): pretty for the lab's report file, one line for `mpmt ipc` and `mpmt run`
/// on stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Exporter for Terminal {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        Ok(match report {
            Report::Lab(r) => terminal::lab::render(r),
            Report::Ipc(r) => terminal::ipc::render(r),
            Report::Run(r) => terminal::run::render(r),
            Report::Dispatch(r) => terminal::dispatch::render(r),
        })
    }
}

impl Exporter for Json {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        match report {
            Report::Lab(r) => json::to_json(r),
            Report::Ipc(r) => json::to_line(r),
            Report::Run(r) => json::to_line(r),
            Report::Dispatch(r) => json::to_line(r),
        }
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
            repeats: 1,
            agreement: vec![],
            claims: vec![
                ClaimResult {
                    id: "create".into(),
                    claim: "Creating a process costs more than creating a thread (1.4, 3).".into(),
                    aspect: "Creation cost".into(),
                    process: "fork+wait 90.0 µs [85.0 µs–101 µs]".into(),
                    thread: "spawn+join 20.0 µs [18.0 µs–22.0 µs]".into(),
                    verdict: Verdict::Confirmed(crate::lab::verdict::Size::Strong),
                    ratio: 4.5,
                    interval: [4.1, 5.0],
                    rounds: vec![4.4, 4.6],
                    context: Default::default(),
                    summary: "fork takes 4.5× as long as a thread.".into(),
                    measurements: vec![m("spawn+join", &[18e-6, 20e-6, 22e-6])],
                    warnings: vec![],
                    tables: vec![],
                    conditions: Vec::new(),
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
                    interval: [1.1, f64::INFINITY],
                    rounds: vec![],
                    context: crate::lab::RunContext {
                        repeat: 1,
                        quiet: Some(crate::measure::quiet::Quiet {
                            busy_pct: 3.5,
                            load_avg: [0.2, 0.1, 0.05],
                            waited_s: 0.3,
                            quiet: true,
                            threshold_pct: 15.0,
                            cpus: vec![0, 1],
                        }),
                    },
                    summary: "On one core processes take 1.24×.".into(),
                    measurements: vec![],
                    warnings: vec![crate::measure::Warning::Recorded(
                        "cross-core wake-ups dominate".into(),
                    )],
                    tables: vec![crate::lab::DetailTable {
                        title: "isolation matrix".into(),
                        header: vec!["fault".into(), "thread".into()],
                        rows: vec![vec!["abort".into(), "process died".into()]],
                    }],
                    conditions: vec![],
                },
            ],
        }
    }
}
