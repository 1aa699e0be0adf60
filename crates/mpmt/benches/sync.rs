//! `cargo bench -p mpmt --bench sync`: the synchronisation primitives of `mpmt::sync` against
//! baselines measured in the same run, as ratios, with the targets of the issue that asked
//! for them:
//!
//! | figure | target |
//! |---|---|
//! | process-shared (robust) mutex, uncontended lock+unlock / std `Mutex` | ≤ 1.5× |
//! | robust mutex between two processes / std `Mutex` between two threads, throughput | ≥ 0.8× |
//! | instrumented (deadlock-detecting) mutex / the plain mutex it wraps, uncontended | ≤ 2× |
//! | ticket lock, Jain's fairness index under full contention | ≥ 0.99 |
//!
//! and, for scale, futex operations per second per thread beside `perf bench futex hash`
//! (when `perf` is installed), and the process-shareable MPMC queue beside crossbeam's
//! `ArrayQueue` (the same algorithm, in-process only) between threads. Each figure is the median over interleaved rounds; the
//! verdict column is computed from the figures. Not part of `cargo test`.
#![cfg(not(loom))]

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mpmt::supervise::{Exit, Routine, fork};
use mpmt::sync::SharedPage;
use mpmt::sync::contend::{Board, Job, Mechanism, Slot, Until};
use mpmt::sync::counter::Counter;
use mpmt::sync::deadlock::Detector;
use mpmt::sync::robust::RobustMutex;
use mpmt::sync::ticket::TicketLock;

const ROUNDS: usize = 7;
const UNCONTENDED: u64 = 2_000_000;
const CONTENDED: u64 = 1_000_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_op(n: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn jain(xs: &[u64]) -> f64 {
    let s: f64 = xs.iter().map(|&x| x as f64).sum();
    let q: f64 = xs.iter().map(|&x| (x as f64).powi(2)).sum();
    s * s / (xs.len() as f64 * q)
}

struct Row {
    what: String,
    value: String,
    target: &'static str,
    met: Option<bool>,
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    uncontended(&mut rows);
    contended(&mut rows);
    fairness(&mut rows, cpus);
    futex_hash(&mut rows, cpus);
    queue(&mut rows);
    println!("\n{:<72} {:>22} {:>9} {:>8}", "figure", "value", "target", "met");
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("{:<72} {:>22} {:>9} {:>8}", r.what, r.value, r.target, met);
    }
}

/// Uncontended lock+unlock (with one increment inside): std `Mutex`, the robust mutex in a
/// shared page, and the deadlock-detecting mutex (a robust mutex plus its bookkeeping).
fn uncontended(rows: &mut Vec<Row>) {
    let std_mutex = Mutex::new(0u64);
    let page = SharedPage::anonymous(4096).unwrap();
    let robust = RobustMutex::in_page(&page, 0);
    let counter: &Counter = page.view(64);
    let detector = Detector::new().unwrap();
    let detecting = detector.registry().register("bench").unwrap();
    let (mut s, mut r, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        s.push(per_op(UNCONTENDED, || *black_box(&std_mutex).lock().unwrap() += 1));
        r.push(per_op(UNCONTENDED, || {
            let g = black_box(robust).lock().unwrap();
            counter.racy_add(1);
            drop(g);
        }));
        d.push(per_op(UNCONTENDED, || {
            let g = black_box(detecting).lock().unwrap();
            counter.racy_add(1);
            drop(g);
        }));
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    let (rs, ds) = (ratio(&r, &s), ratio(&d, &r));
    println!(
        "uncontended lock+unlock: std Mutex {:.1} ns, robust mutex {:.1} ns, detecting mutex {:.1} ns",
        median(s.clone()),
        median(r.clone()),
        median(d.clone())
    );
    rows.push(Row {
        what: "process-shared mutex / std Mutex, uncontended lock+unlock".into(),
        value: format!("{rs:.2}×"),
        target: "≤ 1.5×",
        met: Some(rs <= 1.5),
    });
    rows.push(Row {
        what: "instrumented (detecting) mutex / plain robust mutex, uncontended".into(),
        value: format!("{ds:.2}×"),
        target: "≤ 2×",
        met: Some(ds <= 2.0),
    });
    let dstd = ratio(&d, &s);
    rows.push(Row {
        what: "instrumented (detecting) mutex / std Mutex, uncontended".into(),
        value: format!("{dstd:.2}×"),
        target: "",
        met: None,
    });
}

/// Two threads on a std `Mutex` vs two forked processes on the robust mutex in a shared page:
/// acquisitions per second, all contenders, over the longer one's time.
fn contended(rows: &mut Vec<Row>) {
    let page = SharedPage::anonymous(4096).unwrap();
    let (mut t, mut p) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        t.push(std_threads(2));
        p.push(robust_contest(&page, 2, true));
    }
    let ratio = median(p.iter().zip(&t).map(|(x, y)| x / y).collect());
    println!(
        "contended, 2 contenders: std Mutex threads {:.2} M/s, robust mutex processes {:.2} M/s",
        median(t) / 1e6,
        median(p) / 1e6
    );
    rows.push(Row {
        what: "robust mutex, 2 processes / std Mutex, 2 threads, throughput".into(),
        value: format!("{ratio:.2}×"),
        target: "≥ 0.8×",
        met: Some(ratio >= 0.8),
    });
}

fn std_threads(n: u32) -> f64 {
    let m = Mutex::new(0u64);
    let arrived = AtomicU32::new(0);
    let longest = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                arrived.fetch_add(1, Ordering::SeqCst);
                while arrived.load(Ordering::SeqCst) < n {
                    std::hint::spin_loop();
                }
                let t = Instant::now();
                for _ in 0..CONTENDED {
                    *m.lock().unwrap() += 1;
                }
                longest.fetch_max(t.elapsed().as_nanos() as u64, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(m.into_inner().unwrap(), CONTENDED * u64::from(n));
    (CONTENDED * u64::from(n)) as f64 / (longest.into_inner() as f64 * 1e-9)
}

/// `n` contenders on the robust mutex, forked (`processes`) or threads; acquisitions/s.
fn robust_contest(page: &SharedPage, n: usize, processes: bool) -> f64 {
    let m = RobustMutex::in_page(page, 0);
    let board: &Board = page.view(64);
    board.reset();
    let c: &Counter = page.view(128);
    c.set(0);
    let slots: Vec<&Slot> = (0..n).map(|i| page.view::<Slot>(192 + 64 * i)).collect();
    let jobs: Vec<Job<'_>> = slots
        .iter()
        .map(|&slot| Job {
            board,
            contenders: n as u32,
            mechanism: Mechanism::Robust(m, c),
            until: Until::Count(CONTENDED),
            slot,
            nice: 0,
        })
        .collect();
    run(&jobs, processes);
    assert_eq!(c.get(), CONTENDED * n as u64);
    let longest = slots.iter().map(|s| s.nanos.load(Ordering::SeqCst)).max().unwrap();
    (CONTENDED * n as u64) as f64 / (longest as f64 * 1e-9)
}

fn run(jobs: &[Job<'_>], processes: bool) {
    if processes {
        let mut children: Vec<_> =
            jobs.iter().map(|&j| fork(Routine::Contend(j)).unwrap()).collect();
        for c in &mut children {
            assert_eq!(c.wait().unwrap(), Exit::Code { code: 0 });
        }
    } else {
        std::thread::scope(|s| {
            for j in jobs {
                s.spawn(move || j.run().unwrap());
            }
        });
    }
}

/// Jain's index of the acquisition counts of `cpus` contenders (at least 2) hammering the
/// ticket lock, and the robust mutex (barging) beside it, for 300 ms, threads and processes.
fn fairness(rows: &mut Vec<Row>, cpus: usize) {
    let n = cpus.clamp(2, 16);
    let page = SharedPage::anonymous(4096 * 2).unwrap();
    for processes in [false, true] {
        let model = if processes { "processes" } else { "threads" };
        let (mut ticket, mut barging) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ticket.push(stopped_contest(&page, n, processes, true));
            barging.push(stopped_contest(&page, n, processes, false));
        }
        let (jt, jb) = (median(ticket), median(barging));
        rows.push(Row {
            what: format!("ticket lock Jain index, {n} {model}, full contention"),
            value: format!("{jt:.4}"),
            target: "≥ 0.99",
            met: Some(jt >= 0.99),
        });
        rows.push(Row {
            what: format!("robust (barging) mutex Jain index, {n} {model}, measured"),
            value: format!("{jb:.4}"),
            target: "",
            met: None,
        });
    }
}

fn stopped_contest(page: &SharedPage, n: usize, processes: bool, ticket: bool) -> f64 {
    let t = TicketLock::in_page(page, 0);
    let m = RobustMutex::in_page(page, 64);
    let board: &Board = page.view(128);
    board.reset();
    let c: &Counter = page.view(192);
    let slots: Vec<&Slot> = (0..n).map(|i| page.view::<Slot>(256 + 64 * i)).collect();
    let mechanism = if ticket { Mechanism::Ticket(t, c) } else { Mechanism::Robust(m, c) };
    let jobs: Vec<Job<'_>> = slots
        .iter()
        .map(|&slot| Job {
            board,
            contenders: n as u32,
            mechanism,
            until: Until::Stopped,
            slot,
            nice: 0,
        })
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            while board.arrived() < n as u32 {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(300));
            board.stop();
        });
        run(&jobs, processes);
    });
    jain(&slots.iter().map(|s| s.ops.load(Ordering::SeqCst)).collect::<Vec<_>>())
}

/// Our non-private futex wait on a word that does not match (`EAGAIN` at once, the same
/// operation as `perf bench futex hash`), 1024 words per thread, one second, `cpus` threads;
/// beside `perf bench futex hash` private and shared (`-S`).
fn futex_hash(rows: &mut Vec<Row>, cpus: usize) {
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cpus)
            .map(|_| {
                s.spawn(|| {
                    let words: Vec<AtomicU32> = (0..1024).map(|_| AtomicU32::new(0)).collect();
                    let t = Instant::now();
                    let mut ops = 0u64;
                    while t.elapsed() < Duration::from_secs(1) {
                        for w in &words {
                            let _ = mpmt::sync::futex::wait(w, 1, Duration::from_secs(1));
                        }
                        ops += words.len() as u64;
                    }
                    ops as f64 / t.elapsed().as_secs_f64()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ours = per_thread.iter().sum::<f64>() / per_thread.len() as f64;
    rows.push(Row {
        what: format!("futex wait (EAGAIN), ours, shared, {cpus} threads, per thread"),
        value: format!("{:.2} M ops/s", ours / 1e6),
        target: "",
        met: None,
    });
    for (flag, kind) in [(None, "private"), (Some("-S"), "shared")] {
        let mut cmd = std::process::Command::new("perf");
        cmd.args(["bench", "futex", "hash", "-r", "1", "-t", &cpus.to_string()]);
        cmd.args(flag);
        let value = match cmd.output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Averaged ")?.split_whitespace().next()?.parse::<f64>().ok()
                })
                .map_or("unparsed output".to_owned(), |v| format!("{:.2} M ops/s", v / 1e6)),
            Ok(out) => format!("perf failed: {}", out.status),
            Err(e) => format!("perf not run: {e}"),
        };
        rows.push(Row {
            what: format!("perf bench futex hash, {kind}, {cpus} threads, per thread"),
            value,
            target: "",
            met: None,
        });
    }
}

/// Two producers and two consumers move `QUEUE_ITEMS` values each way through a ring of 1024:
/// `mpmt::sync::queue::Queue` in a shared page vs crossbeam's `ArrayQueue`; values per second.
const QUEUE_ITEMS: u64 = 1_000_000;

fn queue(rows: &mut Vec<Row>) {
    use crossbeam_queue::ArrayQueue;
    use mpmt::sync::queue::Queue;
    let page = SharedPage::anonymous(Queue::bytes(1024)).unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let q = Queue::init(&page, 0, 1024).unwrap();
        ours.push(mpmc(|v| q.push(v).is_ok(), || q.pop()));
        let a = ArrayQueue::new(1024);
        theirs.push(mpmc(|v| a.push(v).is_ok(), || a.pop()));
    }
    let ratio = median(ours.iter().zip(&theirs).map(|(x, y)| x / y).collect());
    rows.push(Row {
        what: format!(
            "MPMC queue, 2P/2C threads: ours {:.1} M/s / ArrayQueue {:.1} M/s",
            median(ours) / 1e6,
            median(theirs) / 1e6
        ),
        value: format!("{ratio:.2}×"),
        target: "",
        met: None,
    });
}

fn mpmc(push: impl Fn(u64) -> bool + Sync, pop: impl Fn() -> Option<u64> + Sync) -> f64 {
    let sum = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for p in 0..2u64 {
            let push = &push;
            s.spawn(move || {
                for i in 0..QUEUE_ITEMS {
                    while !push(p * QUEUE_ITEMS + i) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        for _ in 0..2 {
            let (pop, sum) = (&pop, &sum);
            s.spawn(move || {
                let mut local = 0u64;
                for _ in 0..QUEUE_ITEMS {
                    loop {
                        if let Some(v) = pop() {
                            local = local.wrapping_add(v);
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
                sum.fetch_add(local, Ordering::SeqCst);
            });
        }
    });
    let n = 2 * QUEUE_ITEMS;
    assert_eq!(sum.into_inner(), n * (n - 1) / 2, "a value lost or duplicated");
    n as f64 / t.elapsed().as_secs_f64()
}
