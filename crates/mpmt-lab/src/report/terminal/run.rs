//! `mpmt run`'s text output: a pure function of a [`RunReport`], one labelled line per
//! figure (wall time and rate, latency and in-worker time percentiles, CPU time, peak
//! memory, outcome counts), then lines only for what happened (restarts, verification,
//! recovery, recycling, leaked threads, an interruption).

use std::fmt::Write as _;

use mpmt::pool::Spawn;
use mpmt::supervise::MemoryCap;

use crate::bench::workload::RunReport;

/// Renders `r` as text (ends with a newline).
pub fn render(r: &RunReport) -> String {
    let mut s = String::new();
    let transport = r.transport.map(|t| format!(", {t}")).unwrap_or_default();
    let spawn = match r.spawn {
        Some(Spawn::ForkServer) => ", fork server",
        Some(Spawn::Exec) => ", exec",
        None => "",
    };
    let _ = writeln!(
        s,
        "model {} ({} workers{transport}{spawn}) · task {} (size {}) · {} tasks",
        r.model, r.workers, r.task, r.size, r.count
    );
    let _ =
        writeln!(s, "  start         {:.3} ms   (pool built, every worker ready)", r.start_s * 1e3);
    let _ = writeln!(
        s,
        "  wall          {:.3} s   {:.0} tasks/s   {:.3} µs/task",
        r.wall_s,
        r.tasks_per_s,
        1e6 / r.tasks_per_s
    );
    if let Some(l) = &r.latency_us {
        let _ = writeln!(
            s,
            "  latency       p50 {:.1} µs   p99 {:.1} µs   (submit → outcome)",
            l.p50, l.p99
        );
    }
    if let Some(l) = &r.exec_us {
        let _ = writeln!(
            s,
            "  exec          p50 {:.1} µs   p99 {:.1} µs   (inside the worker)",
            l.p50, l.p99
        );
    }
    let _ = writeln!(
        s,
        "  cpu           user {:.3} s + sys {:.3} s (children included)",
        r.cpu.user_s, r.cpu.sys_s
    );
    let _ = writeln!(
        s,
        "  peak memory   parent {:.1} MiB, workers {:.1} MiB over {} processes",
        r.peak_memory.parent_kib as f64 / 1024.0,
        r.peak_memory.workers_kib as f64 / 1024.0,
        r.peak_memory.worker_processes
    );
    if let (Some(limit), Some(m)) = (r.memory_limit, r.memory_cap_mechanism) {
        let how = match m {
            MemoryCap::Cgroup2 => "a cgroup v2 per worker (memory.max)",
            MemoryCap::Cgroup1 => "a cgroup v1 per worker (memory.limit_in_bytes)",
            MemoryCap::RlimitAs => "RLIMIT_AS (address space)",
        };
        let _ = writeln!(
            s,
            "  memory cap    {:.1} MiB per worker, {m}: {how}",
            limit as f64 / (1u64 << 20) as f64
        );
    }
    let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let errors =
        if errors.is_empty() { String::new() } else { format!(" · {}", errors.join(" · ")) };
    let injected = match r.inject_kind {
        Some(k) => format!("   (injected {} {k})", r.injected),
        None => String::new(),
    };
    let _ = writeln!(s, "  outcomes      ok {}{errors} · lost {}{injected}", r.ok, r.lost);
    if r.restarts > 0 {
        let _ = writeln!(s, "  restarts      {} worker processes replaced", r.restarts);
    }
    if r.verified > 0 {
        let _ = writeln!(s, "  verified      {} outputs recomputed", r.verified);
    }
    if let Some(p) = &r.recovery_us {
        let _ = writeln!(
            s,
            "  recovery      p50 {:.0} µs   max {:.0} µs   (worker death → replacement ready)",
            p.p50, p.max
        );
    }
    if r.recycled > 0 {
        let _ =
            writeln!(s, "  recycled      {} worker processes (max tasks per worker)", r.recycled);
    }
    if r.leaked_threads > 0 {
        let _ = writeln!(
            s,
            "  leaked        {} threads abandoned to timed-out tasks (threads cannot be killed)",
            r.leaked_threads
        );
    }
    if r.interrupted {
        let _ = writeln!(s, "  interrupted   by Ctrl-C: unfinished tasks are counted as cancelled");
    }
    s
}
