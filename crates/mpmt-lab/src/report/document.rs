//! `report.json`: one lab run as a versioned document, the typed report every renderer
//! (terminal, JSON, Markdown, HTML, compare) is a pure function of.
//!
//! A [`Document`] is the lab's [`LabReport`] (its fields at the top level, as before) plus
//! `schema_version`, the machine's load before the run (`before_run`) and the article's
//! table (`table`, [`super::table`]). The doc comments of these types and of those they
//! hold are the schema.
//!
//! # Versions
//!
//! * **1**: the lab report alone (`machine`, `quick`, `claims`, …), no `schema_version`
//!   field; written by `mpmt lab --json FILE` before the report folder existed.
//! * **2** ([`SCHEMA_VERSION`]): adds `schema_version`, `before_run`, `table`, and
//!   `machine.virtualization`.
//!
//! [`Document::from_json`] reads both: a version-1 file is migrated (its table is built from
//! its claims; `before_run` and `virtualization` stay `null`, since they were never
//! measured) and says so in [`Document::migrated_from`]. A newer version is refused with an
//! error naming both versions, since its fields may mean something this build does not know.

use serde::{Deserialize, Serialize};

use super::ReportError;
use super::table::{self, Row};
use crate::lab::LabReport;
use crate::measure::quiet::Quiet;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 2;

/// A lab run as written to `report.json`. Field docs are the JSON schema of the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The schema version of this document ([`SCHEMA_VERSION`] when written by this build;
    /// absent, meaning 1, in older files).
    pub schema_version: u32,
    /// How busy the machine was just before the run (one 0.3 s window of `/proc/stat` and
    /// the load average), `null` when unreadable or in a migrated file.
    pub before_run: Option<Quiet>,
    /// The article's comparison table (section 3), every row: `aspect`, `aspect_ko`,
    /// `article`, `article_ko`, `claims` (ids) and `cells` (one per claim: `id`, `status`,
    /// `process`, `thread`, `verdict`, `ratio`).
    pub table: Vec<Row>,
    /// The lab's report: `machine`, `quick`, `started_unix_s`, `duration_s`, `claims`,
    /// `repeats`, `agreement`.
    #[serde(flatten)]
    pub lab: LabReport,
    /// The version this document was migrated from, when it was read from an older file;
    /// never written.
    #[serde(skip)]
    pub migrated_from: Option<u32>,
}

impl Document {
    /// A document for `lab`, with the table built for a build that has the claim ids
    /// `built` (see [`table::build`]).
    pub fn new(lab: LabReport, before_run: Option<Quiet>, built: &[&str]) -> Document {
        Document {
            schema_version: SCHEMA_VERSION,
            before_run,
            table: table::build(&lab, built),
            lab,
            migrated_from: None,
        }
    }

    /// A document for `lab` as this build measured it: the table knows which claims this
    /// build has ([`crate::lab::experiments`]).
    pub fn of_this_build(lab: LabReport, before_run: Option<Quiet>) -> Document {
        let ids: Vec<&str> = crate::lab::experiments().iter().map(|e| e.id()).collect();
        Document::new(lab, before_run, &ids)
    }

    /// The warning to print when the machine was busy before the run (each claim also
    /// waits for a quiet machine and carries its own warning when it did not get one).
    pub fn busy_warning(&self) -> Option<String> {
        let q = self.before_run.as_ref().filter(|q| !q.quiet)?;
        Some(format!(
            "the machine was busy before the run: {:.0} % of the allowed CPUs outside mpmt \
             (threshold {:.0} %, load average {:.2}); figures may be slowed unevenly: stop \
             other work and re-run",
            q.busy_pct, q.threshold_pct, q.load_avg[0]
        ))
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Result<String, ReportError> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }

    /// Reads a `report.json` of any known version, migrating an older one (module docs).
    pub fn from_json(text: &str) -> Result<Document, ReportError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let Some(object) = value.as_object() else {
            return Err(ReportError::NotAReport("the JSON is not an object".into()));
        };
        let version = match object.get("schema_version") {
            None => 1,
            Some(v) => v.as_u64().filter(|&v| v >= 1).ok_or_else(|| {
                ReportError::NotAReport(format!("schema_version {v} is not a positive integer"))
            })?,
        };
        if version > u64::from(SCHEMA_VERSION) {
            return Err(ReportError::NewerSchema { found: version, supported: SCHEMA_VERSION });
        }
        if !object.contains_key("claims") || !object.contains_key("machine") {
            return Err(ReportError::NotAReport(
                "it has no 'machine' and 'claims': not a report of `mpmt lab`".into(),
            ));
        }
        if version == 1 {
            let lab: LabReport = serde_json::from_value(value)?;
            // Which claims the build that wrote it had is not recorded: those it lacks read
            // "not run" if this build has them (or the file does), "not built yet" otherwise.
            let mut ids: Vec<String> =
                crate::lab::experiments().iter().map(|e| e.id().to_owned()).collect();
            ids.extend(lab.claims.iter().map(|c| c.id.clone()));
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut doc = Document::new(lab, None, &ids);
            doc.migrated_from = Some(1);
            return Ok(doc);
        }
        Ok(serde_json::from_value(value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn round_trips_with_version_and_table() {
        let doc = fixture::document();
        let text = doc.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema_version"], 2);
        assert_eq!(v["table"].as_array().unwrap().len(), 7);
        assert_eq!(v["table"][3]["aspect"], "Context-switch cost");
        assert_eq!(v["table"][3]["aspect_ko"], "컨텍스트 스위칭 비용");
        assert_eq!(v["table"][3]["claims"], serde_json::json!(["switch", "create"]));
        assert_eq!(v["table"][2]["cells"][1]["status"], "not_built");
        assert_eq!(v["claims"][0]["id"], "create");
        assert_eq!(v["before_run"]["busy_pct"], 42.0);
        assert_eq!(Document::from_json(&text).unwrap(), doc);
    }

    #[test]
    fn migrates_version_1_and_refuses_newer() {
        let v1 = crate::report::json::to_json(&fixture::report()).unwrap();
        let doc = Document::from_json(&v1).unwrap();
        assert_eq!(doc.migrated_from, Some(1));
        assert_eq!(doc.schema_version, SCHEMA_VERSION);
        assert_eq!(doc.lab, fixture::report());
        assert_eq!(doc.table[3].cells[1].status, table::Status::Measured);
        assert_eq!(doc.table[2].cells[0].status, table::Status::NotRun);

        let mut v: serde_json::Value = serde_json::from_str(&v1).unwrap();
        v["schema_version"] = 7.into();
        let err = Document::from_json(&v.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the report has schema version 7, newer than this mpmt reads (up to 2); compare it \
             with a newer mpmt"
        );
        v["schema_version"] = "two".into();
        assert!(
            Document::from_json(&v.to_string()).unwrap_err().to_string().contains("schema_version")
        );
        assert!(Document::from_json("[1]").unwrap_err().to_string().contains("not an object"));
        assert!(Document::from_json("{\"a\": 1}").unwrap_err().to_string().contains("mpmt lab"));
        assert!(Document::from_json("{").is_err());
    }

    /// The saved reports `mpmt compare`'s integration tests read: this build's schema and
    /// version 1, from the fixture.
    #[test]
    fn saved_reports_match_the_fixture() {
        fixture::assert_snapshot("report-v2.json", &fixture::document().to_json().unwrap());
        let v1 = crate::report::json::to_json(&fixture::report()).unwrap();
        fixture::assert_snapshot("report-v1.json", &v1);
    }

    #[test]
    fn warns_when_busy_before_the_run() {
        let doc = fixture::document();
        let w = doc.busy_warning().unwrap().to_string();
        assert!(w.starts_with("the machine was busy before the run: 42 %"), "{w}");
        let mut quiet = doc.clone();
        quiet.before_run.as_mut().unwrap().quiet = true;
        assert!(quiet.busy_warning().is_none());
    }
}
