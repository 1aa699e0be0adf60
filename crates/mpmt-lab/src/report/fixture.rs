//! A hand-built report: a test seam for the renderers, not lab data; and the snapshot
//! check the renderers' tests share.
//!
//! The snapshots are plain files in `tests/snapshots/` of this crate; run the tests with
//! `MPMT_BLESS=1` to rewrite them after an intended change, and review the diff.
use crate::lab::{ClaimResult, DetailTable, LabReport, Measurement, Verdict};
use crate::measure::quiet::Quiet;
use crate::measure::{Machine, Unit};
use crate::report::Document;

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
            virtualization: None,
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
                        between_rounds: vec![],
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

/// The claim ids the fixture's build "has": fixed, so the snapshots do not change when the
/// lab gains a claim.
pub(crate) const BUILT: &[&str] =
    &["create", "switch", "ipc", "cpu", "isolation", "memory", "io", "race", "starvation"];

/// [`report`] with the claims the charts draw (cpu, ipc, memory, isolation, io) added, as a
/// document measured on a busy machine.
pub(crate) fn document() -> Document {
    let mut report = report();
    report.claims.extend(chart_claims());
    document_of(report)
}

/// `report` as a document with [`BUILT`] and a busy machine before the run.
pub(crate) fn document_of(report: LabReport) -> Document {
    let before = Quiet {
        busy_pct: 42.0,
        load_avg: [1.5, 1.0, 0.5],
        waited_s: 0.3,
        quiet: false,
        threshold_pct: 15.0,
        cpus: vec![0, 1],
        between_rounds: vec![],
    };
    let mut doc = Document::new(report, Some(before), BUILT);
    doc.lab.machine.virtualization = Some("virtual machine (KVM/QEMU: Standard PC)".into());
    doc
}

fn claim(id: &str, aspect: &str, measurements: Vec<Measurement>) -> ClaimResult {
    ClaimResult {
        id: id.into(),
        claim: format!("The article's {id} claim."),
        aspect: aspect.into(),
        process: format!("{id} process cell"),
        thread: format!("{id} thread cell"),
        verdict: Verdict::Marginal,
        ratio: 1.05,
        interval: [0.9, 1.2],
        rounds: vec![1.0, 1.1],
        context: Default::default(),
        summary: format!("{id} summary."),
        measurements,
        warnings: vec![],
        tables: vec![],
        conditions: vec![],
    }
}

fn series(name: &str, unit: Unit, median: f64) -> Measurement {
    let xs = vec![median * 0.9, median, median * 1.2];
    Measurement::new(name, unit, xs, vec![]).unwrap()
}

fn chart_claims() -> Vec<ClaimResult> {
    let s = Unit::Seconds;
    let cpu = claim(
        "cpu",
        "Performance: CPU-bound",
        vec![
            series("serial loop (no pool)", s, 0.10),
            series("thread pool, 1 worker", s, 0.10),
            series("thread pool, 2 workers", s, 0.052),
            series("process pool, 1 worker", s, 0.11),
            series("process pool, 2 workers", s, 0.06),
        ],
    );
    let mut ipc = claim(
        "ipc",
        "Communication cost",
        vec![
            series("thread-channel round trip, 64 B", s, 800e-9),
            series("pipe round trip, 64 B", s, 40e-6),
            series("shm round trip, 64 B", s, 600e-9),
            series("thread-channel round trip, 64 KiB", s, 20e-6),
            series("pipe round trip, 64 KiB", s, 90e-6),
            series("shm round trip, 64 KiB", s, 15e-6),
            series("spin-only ping-pong round trip (physical limit)", s, 300e-9),
        ],
    );
    ipc.tables.push(DetailTable {
        title: "IPC per transport (pinned)".into(),
        header: ["size", "endpoint", "round trip p50", "MB/s"].map(String::from).to_vec(),
        rows: vec![
            ["64 B", "pipe", "40.0 µs", "3.2"].map(String::from).to_vec(),
            ["64 B", "shm", "600 ns", "213.3"].map(String::from).to_vec(),
            ["64 KiB", "pipe", "90.0 µs", "1456.4"].map(String::from).to_vec(),
            ["64 KiB", "shm", "15.0 µs", "8738.1"].map(String::from).to_vec(),
            ["64 B", "memcpy (limit)", "–", "37485.8"].map(String::from).to_vec(),
            ["64 KiB", "memcpy (limit)", "–", "65536.0"].map(String::from).to_vec(),
            ["4 B word", "spin ping-pong (limit)", "132 ns", "–"].map(String::from).to_vec(),
        ],
    });
    let b = Unit::Bytes;
    let memory = claim(
        "memory",
        "Memory usage",
        vec![
            series("no pool (baseline) PSS", b, 1.0e6),
            series("thread pool, 1 threads PSS", b, 1.5e6),
            series("thread pool, 8 threads PSS", b, 1.9e6),
            series("process pool, 1 processes PSS", b, 2.4e6),
            series("process pool, 8 processes PSS", b, 5.6e6),
            series("hybrid pool, 2 processes × 4 threads PSS", b, 3.1e6),
        ],
    );
    let mut isolation = claim("isolation", "Independence & stability", vec![]);
    isolation.tables.push(DetailTable {
        title: "60 tasks per cell, one of them faulty".into(),
        header: ["fault", "2 threads", "2 processes"].map(String::from).to_vec(),
        rows: vec![
            ["panic", "lost 0 · survived", "lost 0 · survived"].map(String::from).to_vec(),
            ["abort", "lost 46 · pool died (SIGABRT)", "lost 0 · survived, recovery 2.01 ms"]
                .map(String::from)
                .to_vec(),
        ],
    });
    let mut io =
        claim("io", "Performance: I/O-bound", vec![series("tcp on thread: wall", s, 0.087)]);
    io.tables.push(DetailTable {
        title: "64 blocking requests per batch".into(),
        header: ["workers", "pool", "TCP wall", "ideal", "efficiency"].map(String::from).to_vec(),
        rows: vec![
            ["4", "thread", "87.4 ms", "80.0 ms", "92 %"].map(String::from).to_vec(),
            ["4", "process", "86.8 ms", "80.0 ms", "92 %"].map(String::from).to_vec(),
            ["16", "thread", "24.8 ms", "20.0 ms", "81 %"].map(String::from).to_vec(),
            ["16", "process", "26.0 ms", "20.0 ms", "77 %"].map(String::from).to_vec(),
        ],
    });
    vec![cpu, ipc, memory, isolation, io]
}

/// Compares `actual` with the snapshot file `name` (module docs); with `MPMT_BLESS=1` set,
/// writes it instead.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("MPMT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("snapshot {} unreadable ({e}); run with MPMT_BLESS=1 to write it", path.display())
    });
    if expected != actual {
        let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{name} differs from its snapshot (first differing line {}); run with MPMT_BLESS=1 \
             to accept, then review the diff.\n--- actual ---\n{actual}",
            line.map_or("past the end".to_owned(), |l| (l + 1).to_string())
        );
    }
}
