//! The article's comparison table (its section 3), every row, filled from the claims.
//!
//! The article compares the two models in seven aspects; [`ASPECTS`] lists them with the
//! article's own Korean names, its two cells (in Korean and in English), and the claims
//! whose measurements fill the row:
//!
//! | aspect | claims |
//! |---|---|
//! | resource management (자원 관리) | `memory` (copy-on-write: what is shared), `race` |
//! | independence & stability (독립성 & 안정성) | `isolation`, `deadlock`, `starvation` |
//! | communication (통신) | `ipc`, `sync` |
//! | context-switch cost (컨텍스트 스위칭 비용) | `switch`, `create` |
//! | performance characteristics (성능 특성) | `cpu`, `io` |
//! | memory usage (메모리 사용량) | `memory` |
//! | use cases (사용 사례) | `advice` |
//!
//! A claim plugs in by its id: when the lab gains one, its row fills with no change here.
//! A claim this build does not have says "not built yet", one the run skipped (`--only`)
//! says "not run", so no cell is ever blank. [`build`] is a pure function of the lab report
//! and the ids this build has.

use serde::{Deserialize, Serialize};

use crate::lab::{ClaimResult, LabReport};

/// The language of row and column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Korean: the article's own row and column names.
    Ko,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Lang, String> {
        match s {
            "en" => Ok(Lang::En),
            "ko" => Ok(Lang::Ko),
            _ => Err(format!("unknown language '{s}'; valid: en, ko")),
        }
    }
}

/// Words of the table in one language.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// Header of the aspect column.
    pub aspect: &'static str,
    /// Header of the multi-process column.
    pub process: &'static str,
    /// Header of the multi-thread column.
    pub thread: &'static str,
    /// Header of the verdict column.
    pub verdict: &'static str,
    /// Header of the article's own statements.
    pub article: &'static str,
    /// A cell of a claim this build does not have.
    pub not_built: &'static str,
    /// A cell of a claim the run skipped.
    pub not_run: &'static str,
}

impl Lang {
    /// The table's words in this language.
    pub fn words(self) -> Words {
        match self {
            Lang::En => Words {
                aspect: "aspect",
                process: "multi-process (measured)",
                thread: "multi-thread (measured)",
                verdict: "verdict",
                article: "the article says",
                not_built: "not built yet",
                not_run: "not run (--only)",
            },
            Lang::Ko => Words {
                aspect: "항목",
                process: "멀티프로세스 (측정)",
                thread: "멀티쓰레드 (측정)",
                verdict: "판정",
                article: "글의 주장",
                not_built: "아직 구현되지 않음",
                not_run: "실행하지 않음 (--only)",
            },
        }
    }
}

/// Which part of a claim fills a row's cells.
#[derive(Debug, Clone, Copy)]
pub enum Facet {
    /// The claim's own `process` and `thread` cells.
    Cells,
    /// Two rows of one of the claim's detail tables (found by the start of its title): the
    /// row whose first cell starts with `process` and the one starting with `thread`,
    /// written as `header: value` pairs.
    TableRows {
        /// How the table's title starts.
        title: &'static str,
        /// How the multi-process row's first cell starts.
        process: &'static str,
        /// How the multi-thread row's first cell starts.
        thread: &'static str,
    },
}

/// One row of the article's table.
#[derive(Debug, Clone, Copy)]
pub struct Aspect {
    /// English name.
    pub en: &'static str,
    /// The article's Korean name.
    pub ko: &'static str,
    /// The article's cells, multi-process then multi-thread, in English.
    pub article_en: [&'static str; 2],
    /// The article's cells in its own words.
    pub article_ko: [&'static str; 2],
    /// The claims that fill it, by id, each with the part of it that does.
    pub claims: &'static [(&'static str, Facet)],
}

/// The article's seven rows, in its order (module docs).
pub const ASPECTS: [Aspect; 7] = [
    Aspect {
        en: "Resource management",
        ko: "자원 관리",
        article_en: [
            "each process gets its own memory (code, data, heap, stack)",
            "threads share the process's code, data and heap; each has its own stack and registers",
        ],
        article_ko: [
            "서로 다른 프로세스마다 독립된 메모리(Code, Data, Heap, Stack) 할당",
            "프로세스 내 자원(코드, 데이터, 힙)을 공유하며, 스택과 레지스터는 스레드별로 독립",
        ],
        claims: &[
            (
                "memory",
                Facet::TableRows {
                    title: "Copy-on-write",
                    process: "a forked child",
                    thread: "a thread",
                },
            ),
            ("race", Facet::Cells),
        ],
    },
    Aspect {
        en: "Independence & stability",
        ko: "독립성 & 안정성",
        article_en: [
            "a crashing process does not directly affect the others; secure and stable",
            "an error in one thread can affect the whole process; poor synchronisation hurts \
             stability",
        ],
        article_ko: [
            "한 프로세스 충돌이 다른 프로세스에 직접적 영향 없음, 보안·안정성 높음",
            "한 스레드 오류 시 전체 프로세스에 영향 가능, 동기화 설계 미흡 시 안정성 떨어질 수 있음",
        ],
        claims: &[
            ("isolation", Facet::Cells),
            ("deadlock", Facet::Cells),
            ("starvation", Facet::Cells),
        ],
    },
    Aspect {
        en: "Communication (data exchange)",
        ko: "통신 (데이터 교환)",
        article_en: [
            "needs IPC (pipes, message queues, shared memory, sockets): harder, with overhead",
            "shares the process's resources: very fast and simple",
        ],
        article_ko: [
            "파이프, 메시지 큐, 공유 메모리, 소켓 등 IPC 필요 → 구현 난이도와 오버헤드 존재",
            "프로세스 내부 자원 공유로 통신이 매우 빠르고 간단",
        ],
        claims: &[("ipc", Facet::Cells), ("sync", Facet::Cells)],
    },
    Aspect {
        en: "Context-switch cost",
        ko: "컨텍스트 스위칭 비용",
        article_en: [
            "creating, ending and switching processes is expensive",
            "switching threads is comparatively cheap",
        ],
        article_ko: ["프로세스 생성·종료 및 스위칭 비용이 큼", "스레드 스위칭은 비교적 저렴"],
        claims: &[("switch", Facet::Cells), ("create", Facet::Cells)],
    },
    Aspect {
        en: "Performance characteristics",
        ko: "성능 특성",
        article_en: [
            "effective for CPU-bound work, large computations in parallel",
            "suits I/O-bound work and fast response, real-time processing",
        ],
        article_ko: [
            "CPU 바운드 작업에 효과적, 병렬 처리를 통해 대규모 연산 가능",
            "I/O 바운드 작업, 빠른 반응 요구 환경에 유리, 실시간 처리 가능",
        ],
        claims: &[("cpu", Facet::Cells), ("io", Facet::Cells)],
    },
    Aspect {
        en: "Memory usage",
        ko: "메모리 사용량",
        article_en: [
            "grows with the number of independent processes",
            "relatively small, since the process's resources are shared",
        ],
        article_ko: [
            "독립된 프로세스가 많아질수록 메모리 사용량 증가",
            "프로세스 자원을 공유하므로 메모리 사용량이 상대적으로 적음",
        ],
        claims: &[("memory", Facet::Cells)],
    },
    Aspect {
        en: "Use cases",
        ko: "사용 사례",
        article_en: [
            "separate server processes, large parallel computation, systems that need security",
            "network server threads, GUI event handling, real-time data streaming",
        ],
        article_ko: [
            "서버 프로세스 분리, 대규모 병렬 계산, 보안이 필요한 시스템",
            "네트워크 서버 스레드, GUI 이벤트 처리, 실시간 데이터 스트리밍",
        ],
        claims: &[("advice", Facet::Cells)],
    },
];

/// Whether a claim of a row was measured. Serialised in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The run measured it.
    Measured,
    /// This build has the claim but the run skipped it (`--only`).
    NotRun,
    /// This build does not have the claim yet.
    NotBuilt,
}

/// One claim's part of a row. Field docs are the JSON schema of `table[].cells[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The claim id.
    pub id: String,
    /// `measured`, `not_run` or `not_built`.
    pub status: Status,
    /// The measured multi-process cell; `null` unless measured.
    pub process: Option<String>,
    /// The measured multi-thread cell; `null` unless measured.
    pub thread: Option<String>,
    /// The claim's verdict with its strength, e.g. `confirmed, strong` or `depends` (the
    /// condition is the claim's), and after `--repeat N` how the repeats agree; `null`
    /// unless measured.
    pub verdict: Option<String>,
    /// The effect that decided the verdict (see the claim's `ratio`); `null` unless measured.
    pub ratio: Option<f64>,
}

/// One row of the article's table. Field docs are the JSON schema of `table[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The aspect's English name, e.g. `Context-switch cost`.
    pub aspect: String,
    /// The article's Korean name, e.g. `컨텍스트 스위칭 비용`.
    pub aspect_ko: String,
    /// The article's two cells (multi-process, multi-thread) in English.
    pub article: [String; 2],
    /// The article's two cells in Korean, as written.
    pub article_ko: [String; 2],
    /// The claim ids that fill the row.
    pub claims: Vec<String>,
    /// One cell per claim, in the order of `claims`.
    pub cells: Vec<Cell>,
}

impl Row {
    /// The aspect's name in `lang`.
    pub fn name(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.aspect,
            Lang::Ko => &self.aspect_ko,
        }
    }

    /// The article's cells in `lang`.
    pub fn article(&self, lang: Lang) -> &[String; 2] {
        match lang {
            Lang::En => &self.article,
            Lang::Ko => &self.article_ko,
        }
    }

    /// The row's three measured columns as text: multi-process, multi-thread, verdict. With
    /// more than one claim each part is prefixed by its id; a claim that was not measured
    /// says so in `lang`.
    pub fn texts(&self, lang: Lang) -> [String; 3] {
        let words = lang.words();
        let many = self.cells.len() > 1;
        let mut out: [Vec<String>; 3] = Default::default();
        for cell in &self.cells {
            let missing = match cell.status {
                Status::Measured => None,
                Status::NotRun => Some(words.not_run),
                Status::NotBuilt => Some(words.not_built),
            };
            let verdict = cell.verdict.as_ref().map(|v| match cell.ratio {
                Some(r) => format!("{v} ({r:.2}×)"),
                None => v.clone(),
            });
            for (i, text) in [&cell.process, &cell.thread, &verdict].into_iter().enumerate() {
                let text = missing.map_or_else(|| text.clone().unwrap_or_default(), str::to_owned);
                out[i].push(if many { format!("{}: {text}", cell.id) } else { text });
            }
        }
        out.map(|parts| parts.join("\n"))
    }
}

/// The article's table for `report`, with `built` the claim ids this build has.
///
/// A claim measured several times (`--repeat N`) fills its cells from its last repeat and
/// states the agreement across the repeats beside its verdict.
pub fn build(report: &LabReport, built: &[&str]) -> Vec<Row> {
    ASPECTS
        .iter()
        .map(|aspect| Row {
            aspect: aspect.en.to_owned(),
            aspect_ko: aspect.ko.to_owned(),
            article: aspect.article_en.map(str::to_owned),
            article_ko: aspect.article_ko.map(str::to_owned),
            claims: aspect.claims.iter().map(|(id, _)| (*id).to_owned()).collect(),
            cells: aspect
                .claims
                .iter()
                .map(|&(id, facet)| cell(report, built, id, facet))
                .collect(),
        })
        .collect()
}

fn cell(report: &LabReport, built: &[&str], id: &str, facet: Facet) -> Cell {
    let Some(claim) = report.claims.iter().rev().find(|c| c.id == id) else {
        let status = if built.contains(&id) { Status::NotRun } else { Status::NotBuilt };
        return Cell {
            id: id.to_owned(),
            status,
            process: None,
            thread: None,
            verdict: None,
            ratio: None,
        };
    };
    // The condition of a `depends` is left to the claim's own section: it can run to a
    // paragraph, and the table is read at a glance.
    let mut verdict = claim.verdict.to_string();
    if report.repeats > 1
        && let Some(a) = report.agreement.iter().find(|a| a.id == id)
    {
        verdict = format!("{verdict}; repeats: {a}");
    }
    let [process, thread] = facet_cells(claim, facet);
    Cell {
        id: id.to_owned(),
        status: Status::Measured,
        process: Some(process),
        thread: Some(thread),
        verdict: Some(verdict),
        ratio: Some(claim.ratio),
    }
}

/// The two cells `facet` takes from `claim`; a detail table that is missing falls back to
/// the claim's own cells.
fn facet_cells(claim: &ClaimResult, facet: Facet) -> [String; 2] {
    let own = [claim.process.clone(), claim.thread.clone()];
    let Facet::TableRows { title, process, thread } = facet else { return own };
    let Some(table) = claim.tables.iter().find(|t| t.title.starts_with(title)) else { return own };
    let row = |first: &str| {
        let row = table.rows.iter().find(|r| r.first().is_some_and(|c| c.starts_with(first)))?;
        let pairs: Vec<String> =
            table.header.iter().zip(row).map(|(h, v)| format!("{h}: {v}")).collect();
        Some(pairs.join("; "))
    };
    match (row(process), row(thread)) {
        (Some(p), Some(t)) => [p, t],
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn every_row_filled_or_saying_why_not() {
        let rows = build(&fixture::report(), &["create", "switch", "ipc", "memory"]);
        assert_eq!(rows.len(), 7);
        let names: Vec<&str> = rows.iter().map(|r| r.aspect_ko.as_str()).collect();
        assert_eq!(
            names,
            [
                "자원 관리",
                "독립성 & 안정성",
                "통신 (데이터 교환)",
                "컨텍스트 스위칭 비용",
                "성능 특성",
                "메모리 사용량",
                "사용 사례"
            ]
        );
        let switch = &rows[3];
        assert_eq!(switch.claims, ["switch", "create"]);
        assert!(switch.cells.iter().all(|c| c.status == Status::Measured));
        let [p, t, v] = switch.texts(Lang::En);
        assert!(p.starts_with("switch: 1 core: 1.78 µs\ncreate: fork+wait"), "{p}");
        assert!(t.contains("create: spawn+join 20.0 µs"), "{t}");
        assert!(v.contains("create: confirmed, strong (4.50×)"), "{v}");
        assert_eq!(rows[2].cells[0].status, Status::NotRun);
        assert_eq!(rows[2].cells[1].status, Status::NotBuilt);
        assert_eq!(rows[2].texts(Lang::En)[0], "ipc: not run (--only)\nsync: not built yet");
        assert_eq!(rows[6].texts(Lang::Ko)[2], "아직 구현되지 않음");
        for row in &rows {
            assert!(row.texts(Lang::En).iter().all(|t| !t.is_empty()), "{row:?}");
        }
    }

    #[test]
    fn a_detail_table_fills_the_resource_row() {
        let mut report = fixture::report();
        let mut memory = report.claims[0].clone();
        memory.id = "memory".into();
        memory.tables = vec![crate::lab::DetailTable {
            title: "Copy-on-write after fork".into(),
            header: vec!["who writes".into(), "pages copied".into()],
            rows: vec![
                vec!["a thread".into(), "none".into()],
                vec!["a forked child".into(), "71".into()],
            ],
        }];
        report.claims.push(memory);
        let rows = build(&report, &[]);
        assert_eq!(
            rows[0].cells[0].process.as_deref(),
            Some("who writes: a forked child; pages copied: 71")
        );
        assert_eq!(
            rows[0].cells[0].thread.as_deref(),
            Some("who writes: a thread; pages copied: none")
        );
        // Without the table the claim's own cells stand in.
        assert_eq!(rows[5].cells[0].process.as_deref(), Some(report.claims[0].process.as_str()));
        assert_eq!("ko".parse::<Lang>(), Ok(Lang::Ko));
        assert!("fr".parse::<Lang>().is_err());
    }
}
