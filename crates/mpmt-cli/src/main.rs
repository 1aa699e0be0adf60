//! The `mpmt` command line: parses arguments, calls the library, prints.
//!
//! Exit codes: 0 success; 1 a run lost tasks, or a command failed; 2 bad arguments.

mod cli;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use signal_hook::consts::SIGINT;

use cli::{Cli, Command, IpcArgs, LabArgs, ModelArg, RunArgs};
use mpmt::pool::{Model, available_cpus};
use mpmt_lab::bench::workload::{RunError, RunReport, RunSpec};
use mpmt_lab::lab::{LabConfig, LabError, LabReport};

/// Workers note failed allocations, so running out of memory is told apart from an abort.
#[global_allocator]
static ALLOC: mpmt::worker::OomAwareAlloc = mpmt::worker::OomAwareAlloc;

/// What the binary becomes when re-executed with a hidden first argument.
type Hidden = fn(Vec<OsString>) -> i32;

/// The one table of hidden re-exec commands: the engine's pool worker and the lab's children
/// ([`mpmt_lab::child`]). A re-executed child must not parse the command line or print
/// anything of the CLI's, so this table is consulted before anything else happens.
const HIDDEN: &[(&str, Hidden)] = &[
    (mpmt::worker::WORKER_COMMAND, |args| {
        mpmt::worker::run(&mpmt::task::Registry::builtin(), args.into_iter())
    }),
    (mpmt_lab::child::PEER_COMMAND, mpmt_lab::child::ipc_peer),
    (mpmt_lab::child::CELL_COMMAND, mpmt_lab::child::lab_cell),
    (mpmt_lab::child::EXIT_COMMAND, mpmt_lab::child::exit_at_once),
];

/// Runs the hidden command named by the first argument, if there is one.
fn run_if_hidden() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    let (_, entry) = HIDDEN.iter().find(|(name, _)| first == *name)?;
    Some(entry(args.collect()))
}

fn main() -> ExitCode {
    if let Some(code) = run_if_hidden() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() { ExitCode::from(2) } else { ExitCode::from(1) }
        }
    }
}

/// An error in the arguments found after parsing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_workload(args),
        Command::Lab(args) => lab(args),
        Command::Ipc(args) => ipc(args),
    }
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !io::IsTerminal::is_terminal(&io::stderr()) {
        return ProgressBar::hidden();
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks {per_sec}")
            .expect("valid template"),
    );
    bar
}

fn run_workload(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workers = args.workers.map_or_else(available_cpus, |n| n as usize);
    let model = match args.model {
        ModelArg::Thread => Model::Threads(workers),
        ModelArg::Process => Model::Processes(workers),
        ModelArg::Hybrid => {
            if args.workers.is_some() {
                return Err(Usage(
                    "--model hybrid takes --processes and --threads, not --workers".into(),
                )
                .into());
            }
            Model::Hybrid {
                processes: args.processes.map_or_else(available_cpus, |n| n as usize),
                threads: args.threads.map_or(2, |n| n as usize),
            }
        }
    };
    if args.model != ModelArg::Hybrid && (args.processes.is_some() || args.threads.is_some()) {
        return Err(Usage("--processes and --threads belong to --model hybrid".into()).into());
    }
    let inject = args.inject.map(|mut plan| {
        plan.seed = args.seed;
        plan
    });
    let spec = RunSpec {
        model,
        transport: args.transport,
        workload: args.task,
        count: args.count,
        size: args.size.unwrap_or(args.task.default_size()),
        inject,
        verify: args.verify,
        program: None,
        timeout: args.timeout,
        memory_limit: args.memory_limit,
        max_tasks_per_worker: args.max_tasks_per_worker,
        retries: args.retries,
    };
    // First Ctrl-C: stop the workers and report what finished; a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, stop.clone())
        .context("installing the Ctrl-C handler")?;
    signal_hook::flag::register(SIGINT, stop.clone()).context("installing the Ctrl-C handler")?;
    let bar = progress(spec.count);
    let report = mpmt_lab::bench::workload::run(&spec, &stop, |done| {
        if done % 1024 == 0 {
            bar.set_position(done);
        }
    });
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(RunError::Spec(m)) => return Err(Usage(m).into()),
        Err(e) => return Err(e).context("running the workload"),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render_run(&report))?;
    }
    Ok(if report.lost > 0 {
        ExitCode::from(1)
    } else if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn render_run(r: &RunReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let transport = r.transport.map(|t| format!(", {t}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "model {} ({} workers{transport}) · task {} (size {}) · {} tasks",
        r.model, r.workers, r.task, r.size, r.count
    );
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

fn lab(args: LabArgs) -> anyhow::Result<ExitCode> {
    let cfg = LabConfig {
        quick: args.quick,
        only: args.only,
        exe: std::env::current_exe()
            .context("locating the mpmt binary for the spawn experiments")?,
    };
    let machine = mpmt_lab::measure::Machine::detect();
    eprintln!(
        "mpmt lab{} on {} ({} logical cores, kernel {})",
        if cfg.quick { " --quick" } else { "" },
        machine.cpu_model,
        machine.logical_cores,
        machine.kernel
    );
    let mut partial: Vec<mpmt_lab::lab::ClaimResult> = Vec::new();
    let mut write_error = None;
    let report = mpmt_lab::lab::run(&cfg, &mut |claim| {
        eprintln!("  {:<10} {} (ratio {:.2})", claim.id, claim.verdict, claim.ratio);
        partial.push(claim.clone());
        // Written after every claim, so a later failure loses nothing.
        if let Some(path) = &args.json {
            let snapshot = LabReport {
                machine: machine.clone(),
                quick: cfg.quick,
                started_unix_s: 0,
                duration_s: 0.0,
                claims: partial.clone(),
            };
            if let Err(e) = write_json(path, &snapshot) {
                write_error.get_or_insert(e);
            }
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(e @ LabError::UnknownExperiment { .. }) => return Err(Usage(e.to_string()).into()),
        Err(e) => return Err(e).context("running the lab"),
    };
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    let mut out = io::stdout().lock();
    write!(out, "{}", mpmt_lab::report::terminal::render(&report))?;
    if let Some(path) = &args.json {
        writeln!(out, "JSON report: {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ipc(args: IpcArgs) -> anyhow::Result<ExitCode> {
    let cfg = mpmt_lab::bench::ipc::IpcConfig {
        sizes: args.sizes.0,
        transports: args.transports,
        quick: args.quick,
        pin: args.pin,
        exe: std::env::current_exe().context("locating the mpmt binary for the peer processes")?,
    };
    let machine = mpmt_lab::measure::Machine::detect();
    eprintln!(
        "mpmt ipc{} on {} ({} logical cores, kernel {})",
        if cfg.quick { " --quick" } else { "" },
        machine.cpu_model,
        machine.logical_cores,
        machine.kernel
    );
    let bar = mpmt_lab::lab::progress_bar("ipc");
    let report = mpmt_lab::bench::ipc::run(&cfg, &bar);
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(
            e @ (mpmt_lab::bench::ipc::IpcError::BadSize { .. }
            | mpmt_lab::bench::ipc::IpcError::Empty(_)),
        ) => {
            return Err(Usage(e.to_string()).into());
        }
        Err(e) => return Err(e).context("measuring IPC"),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", mpmt_lab::bench::ipc::render::render(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_json(path: &std::path::Path, report: &LabReport) -> anyhow::Result<()> {
    let text = mpmt_lab::report::json::to_json(report)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
