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
use signal_hook::consts::SIGINT;

use cli::{
    BenchArgs, BenchCommand, Cli, Command, DispatchArgs, IpcArgs, LabArgs, ModelArg, RunArgs,
};
use mpmt::pool::{Model, available_cpus};
use mpmt_lab::bench::workload::{RunError, RunSpec};
use mpmt_lab::lab::{LabConfig, LabError, LabReport};
use mpmt_lab::report::{Exporter, Json, Report, Terminal, terminal};

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
    (mpmt_lab::child::MEMORY_COMMAND, mpmt_lab::child::memory_probe),
    (mpmt_lab::child::ECHO_COMMAND, mpmt_lab::child::dispatch_echo),
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
        Command::Bench(BenchArgs { command: BenchCommand::Dispatch(args) }) => dispatch(args),
    }
}

fn dispatch(args: DispatchArgs) -> anyhow::Result<ExitCode> {
    let python = if args.no_python {
        None
    } else {
        // The first `python3` on PATH, if any: the `multiprocessing` baseline.
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|d| d.join("python3")).find(|p| p.is_file())
        })
    };
    let cfg = mpmt_lab::bench::dispatch::DispatchConfig {
        quick: args.quick,
        tasks: args.tasks,
        exe: std::env::current_exe().context("locating the mpmt binary for the workers")?,
        transports: args.transports,
        python,
    };
    let machine = mpmt_lab::measure::Machine::detect();
    eprintln!("{}", terminal::banner("bench dispatch", cfg.quick, &machine));
    let bar = mpmt_lab::lab::progress_bar("dispatch");
    let report = mpmt_lab::bench::dispatch::run(&cfg, &mut |what| bar.set_message(what.to_owned()));
    bar.finish_and_clear();
    let report = report.context("measuring dispatch")?;
    write!(io::stdout().lock(), "{}", exporter(args.json).export(Report::Dispatch(&report))?)?;
    Ok(ExitCode::SUCCESS)
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
    let bar = mpmt_lab::lab::progress_bar("run");
    bar.set_length(spec.count);
    bar.set_message("tasks");
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
    write!(io::stdout().lock(), "{}", exporter(args.json).export(Report::Run(&report))?)?;
    Ok(if report.lost > 0 {
        ExitCode::from(1)
    } else if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn lab(args: LabArgs) -> anyhow::Result<ExitCode> {
    let cfg = LabConfig {
        quick: args.quick,
        only: args.only,
        exe: std::env::current_exe()
            .context("locating the mpmt binary for the spawn experiments")?,
    };
    if let Some(path) = &args.json {
        // Before the claims run (minutes), not after: a path that cannot be written fails now.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
    }
    let machine = mpmt_lab::measure::Machine::detect();
    eprintln!("{}", terminal::banner("lab", cfg.quick, &machine));
    let mut partial: Vec<mpmt_lab::lab::ClaimResult> = Vec::new();
    let mut write_error = None;
    let repeats = args.repeat as usize;
    let report = mpmt_lab::lab::run_repeated(&cfg, repeats, &mut |claim| {
        eprintln!("{}", terminal::claim_line(claim));
        partial.push(claim.clone());
        // Written after every claim, so a later failure loses nothing.
        if let Some(path) = &args.json {
            let snapshot = LabReport {
                machine: machine.clone(),
                quick: cfg.quick,
                started_unix_s: 0,
                duration_s: 0.0,
                repeats,
                agreement: mpmt_lab::lab::agreement(&partial),
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
    write!(out, "{}", Terminal.export(Report::Lab(&report))?)?;
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
    eprintln!("{}", terminal::banner("ipc", cfg.quick, &machine));
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
    write!(io::stdout().lock(), "{}", exporter(args.json).export(Report::Ipc(&report))?)?;
    Ok(ExitCode::SUCCESS)
}

/// The format `--json` asks for.
fn exporter(json: bool) -> &'static dyn Exporter {
    if json { &Json } else { &Terminal }
}

fn write_json(path: &std::path::Path, report: &LabReport) -> anyhow::Result<()> {
    let text = Json.export(Report::Lab(report))?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
