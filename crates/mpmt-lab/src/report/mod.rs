//! Rendering every typed result (`mpmt lab`, `mpmt ipc`, `mpmt run`) for people and for
//! programs, behind one [`Exporter`] trait so the CLI picks a format and never formats
//! itself.
//!
//! * [`terminal`]: text, one pure function per result (the lab's comparison table, the ipc
//!   tables, the run's figures), and the banner and progress lines around them;
//! * [`json`]: the same results as JSON; the doc comments of [`Document`], [`LabReport`],
//!   [`IpcReport`] and [`RunReport`] (and their parts) are the schema;
//! * [`markdown`]: the lab's tables and a comparison as Markdown, for a design review;
//! * [`html`]: the lab's report as one self-contained page with inline SVG charts;
//! * [`compare`]: two lab reports side by side, ratio per figure.
//!
//! The lab's typed report is a [`Document`] ([`document`]: `report.json`, versioned), which
//! carries the article's table ([`table`]) beside the lab's results.
//!
//! This is the top layer of the crate: it reads the lab's and the instruments' results and
//! nothing below imports it.

pub mod compare;
pub mod document;
pub mod html;
pub mod json;
pub mod markdown;
pub mod table;
pub mod terminal;

use crate::advise::Advice;
use crate::advise::check::CheckReport;
pub use compare::Comparison;
pub use document::Document;
pub use table::Lang;

use crate::bench::dispatch::DispatchReport;
use crate::bench::ipc::IpcReport;
use crate::bench::workload::RunReport;
#[cfg(doc)]
use crate::lab::LabReport;

/// Errors of the report layer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Serialising or parsing JSON failed.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A report written by a newer mpmt.
    #[error(
        "the report has schema version {found}, newer than this mpmt reads (up to \
         {supported}); compare it with a newer mpmt"
    )]
    NewerSchema {
        /// The file's version.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// JSON that is not a lab report.
    #[error("not an mpmt lab report: {0}")]
    NotAReport(String),
    /// A format that does not render this kind of result.
    #[error("{format} output is not available for {what}")]
    Unsupported {
        /// The format.
        format: &'static str,
        /// The kind of result.
        what: &'static str,
    },
    /// Writing a report file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Drawing a chart failed.
    #[error("cannot draw the chart '{chart}': {reason}")]
    Chart {
        /// The chart's title.
        chart: String,
        /// What plotters reported.
        reason: String,
    },
}

/// A typed result to render.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    /// A lab run (`mpmt lab`), with the language of the article's table.
    Lab(&'a Document, Lang),
    /// Two lab runs side by side (`mpmt compare`).
    Compare(&'a Comparison),
    /// An IPC benchmark run (`mpmt ipc`).
    Ipc(&'a IpcReport),
    /// A workload run (`mpmt run`).
    Run(&'a RunReport),
    /// A recommendation (`mpmt advise`).
    Advice(&'a Advice),
    /// The advice checked against sweeps (`mpmt advise --check`).
    Check(&'a CheckReport),
    /// A dispatch benchmark run (`mpmt bench dispatch`).
    Dispatch(&'a DispatchReport),
}

/// The files of a report folder, in the order [`write_folder`] writes them.
pub const FOLDER_FILES: [&str; 3] = ["report.json", "report.md", "index.html"];

/// Writes the report folder `dir` (created if needed): `report.json` ([`Document::to_json`]),
/// `report.md` ([`markdown`]) and `index.html` ([`html`]), the last two with the article's
/// table in `lang`.
pub fn write_folder(dir: &std::path::Path, doc: &Document, lang: Lang) -> Result<(), ReportError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Write { path, source })
    };
    std::fs::create_dir_all(dir)
        .map_err(|source| ReportError::Write { path: dir.to_path_buf(), source })?;
    write(FOLDER_FILES[0], doc.to_json()?)?;
    write(FOLDER_FILES[1], markdown::render(doc, lang))?;
    write(FOLDER_FILES[2], html::render(doc, lang)?)
}

/// Turns a report into text in one format.
pub trait Exporter {
    /// Renders `report` (the text ends with a newline).
    fn export(&self, report: Report<'_>) -> Result<String, ReportError>;
}

/// Text for a terminal ([`terminal`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

/// JSON ([`json`]): pretty for the lab's report and a comparison, one line for `mpmt ipc`
/// and `mpmt run` on stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

/// Markdown tables ([`markdown`]): the lab's report and a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown;

/// One self-contained HTML page with SVG charts ([`html`]): the lab's report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

impl Exporter for Terminal {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        Ok(match report {
            Report::Lab(r, lang) => terminal::lab::render(r, lang),
            Report::Compare(c) => compare::render_text(c),
            Report::Ipc(r) => terminal::ipc::render(r),
            Report::Run(r) => terminal::run::render(r),
            Report::Advice(r) => terminal::advise::advice(r),
            Report::Check(r) => terminal::advise::check(r),
            Report::Dispatch(r) => terminal::dispatch::render(r),
        })
    }
}

impl Exporter for Json {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        match report {
            Report::Lab(r, _) => r.to_json(),
            Report::Compare(c) => {
                let mut text = serde_json::to_string_pretty(c)?;
                text.push('\n');
                Ok(text)
            }
            Report::Ipc(r) => json::to_line(r),
            Report::Run(r) => json::to_line(r),
            Report::Advice(r) => json::to_line(r),
            Report::Check(r) => json::to_line(r),
            Report::Dispatch(r) => json::to_line(r),
        }
    }
}

impl Exporter for Markdown {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        match report {
            Report::Lab(r, lang) => Ok(markdown::render(r, lang)),
            Report::Compare(c) => Ok(markdown::render_comparison(c)),
            Report::Ipc(_) => {
                Err(ReportError::Unsupported { format: "Markdown", what: "mpmt ipc" })
            }
            Report::Run(_) => {
                Err(ReportError::Unsupported { format: "Markdown", what: "mpmt run" })
            }
            Report::Advice(_) => {
                Err(ReportError::Unsupported { format: "Markdown", what: "mpmt advise" })
            }
            Report::Check(_) => {
                Err(ReportError::Unsupported { format: "Markdown", what: "mpmt advise --check" })
            }
            Report::Dispatch(_) => {
                Err(ReportError::Unsupported { format: "Markdown", what: "mpmt bench dispatch" })
            }
        }
    }
}

impl Exporter for Html {
    fn export(&self, report: Report<'_>) -> Result<String, ReportError> {
        match report {
            Report::Lab(r, lang) => html::render(r, lang),
            Report::Compare(_) => {
                Err(ReportError::Unsupported { format: "HTML", what: "mpmt compare" })
            }
            Report::Ipc(_) => Err(ReportError::Unsupported { format: "HTML", what: "mpmt ipc" }),
            Report::Run(_) => Err(ReportError::Unsupported { format: "HTML", what: "mpmt run" }),
            Report::Advice(_) => {
                Err(ReportError::Unsupported { format: "HTML", what: "mpmt advise" })
            }
            Report::Check(_) => {
                Err(ReportError::Unsupported { format: "HTML", what: "mpmt advise --check" })
            }
            Report::Dispatch(_) => {
                Err(ReportError::Unsupported { format: "HTML", what: "mpmt bench dispatch" })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fixture;
