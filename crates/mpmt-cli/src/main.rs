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
    AdviseArgs, BenchArgs, BenchCommand, Cli, Command, CompareArgs, DispatchArgs, IpcArgs, LabArgs,
    ModelArg, RunArgs,
};
use mpmt::pool::{Model, available_cpus};
use mpmt_lab::bench::workload::{RunError, RunSpec};
use mpmt_lab::lab::{LabConfig, LabError, LabReport};
use mpmt_lab::measure::quiet::{QuietPolicy, wait_for_quiet};
use mpmt_lab::report::{Document, Exporter, Json, Markdown, Report, Terminal, terminal};

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
    (mpmt::worker::FORK_SERVER_COMMAND, |args| {
        mpmt::worker::fork_server(&mpmt::task::Registry::builtin(), args.into_iter())
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
        Command::Advise(args) => advise(args),
        Command::Compare(args) => compare(args),
        Command::Bench(BenchArgs { command: BenchCommand::Dispatch(args) }) => dispatch(args),
    }
}

fn advise(args: AdviseArgs) -> anyhow::Result<ExitCode> {
    use mpmt_lab::advise;
    let exe = std::env::current_exe().context("locating the mpmt binary")?;
    let text = if args.check {
        let cfg = advise::check::CheckConfig {
            quick: args.quick,
            only: args.only.unwrap_or_default(),
            exe,
        };
        let report = advise::check::run(&cfg, |name| eprintln!("  checking {name}"))
            .context("checking the advice")?;
        exporter(args.json).export(Report::Check(&report))?
    } else {
        let advice = match args.task {
            Some(workload) => advise::task(&advise::TaskSpec {
                workload,
                size: args.size.unwrap_or(workload.default_size()),
                rounds: 1,
                exe,
                target: std::time::Duration::from_secs(1),
                max_time: args.max_time,
            }),
            None if args.command.is_empty() => {
                return Err(Usage(
                    "give a command after '--' (mpmt advise -- CMD ARGS…), --task KIND or --check"
                        .into(),
                )
                .into());
            }
            None => advise::command(&args.command, args.max_time),
        };
        let advice = match advice {
            Ok(a) => a,
            Err(mpmt_lab::advise::AdviseError::Run(RunError::Spec(m))) => {
                return Err(Usage(m).into());
            }
            Err(e) => return Err(e.into()),
        };
        exporter(args.json).export(Report::Advice(&advice))?
    };
    write!(io::stdout().lock(), "{text}")?;
    Ok(ExitCode::SUCCESS)
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
        ModelArg::Cluster => {
            if args.workers.is_some()
                || (args.threads_per_node.is_some()
                    && (args.processes.is_some() || args.threads.is_some()))
            {
                return Err(Usage(
                    "--model cluster takes --threads-per-node, or --processes and --threads                      (per node)"
                        .into(),
                )
                .into());
            }
            match args.threads_per_node {
                Some(n) => Model::Cluster { processes: n as usize, threads: 1 },
                None => Model::Cluster {
                    processes: args.processes.map_or_else(available_cpus, |n| n as usize),
                    threads: args.threads.map_or(1, |n| n as usize),
                },
            }
        }
    };
    if !matches!(args.model, ModelArg::Hybrid | ModelArg::Cluster)
        && (args.processes.is_some() || args.threads.is_some())
    {
        return Err(Usage("--processes and --threads belong to --model hybrid".into()).into());
    }
    if args.model != ModelArg::Cluster && args.threads_per_node.is_some() {
        return Err(Usage("--threads-per-node belongs to --model cluster".into()).into());
    }
    #[cfg(not(feature = "mpi"))]
    if let Model::Cluster { .. } = model {
        return Err(Usage(
            "--model cluster runs over MPI: this mpmt was built without the `mpi` feature              (cargo build --release --features mpi, with an MPI library installed)"
                .into(),
        )
        .into());
    }
    #[cfg(feature = "mpi")]
    if let Model::Cluster { .. } = model {
        // Under mpirun every rank runs this command: ranks 1…N-1 serve rank 0 and end here.
        if let Some(code) = mpmt::pool::cluster::run_if_node(&mpmt::task::Registry::builtin()) {
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
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
        memory_cap: args.memory_cap,
        spawn: match args.spawn {
            cli::SpawnArg::ForkServer => mpmt::pool::Spawn::ForkServer,
            cli::SpawnArg::Exec => mpmt::pool::Spawn::Exec,
        },
        max_tasks_per_worker: args.max_tasks_per_worker,
        retries: args.retries,
        rounds: args.rounds,
        addr: args.addr,
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
        Err(RunError::Pool(mpmt::pool::PoolError::Interrupted)) => {
            eprintln!("mpmt: interrupted while starting the workers; nothing ran");
            return Ok(ExitCode::from(130));
        }
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
    // An unknown claim is a usage error before anything is created or measured.
    let valid: Vec<String> =
        mpmt_lab::lab::experiments().iter().map(|e| e.id().to_owned()).collect();
    if let Some(bad) = cfg.only.iter().flatten().find(|id| !valid.contains(id)) {
        let e = LabError::UnknownExperiment { id: bad.clone(), valid };
        return Err(Usage(e.to_string()).into());
    }
    // `--json` alone prints the JSON on stdout; `--json FILE` writes it to FILE as well.
    let json_file = args.json.as_ref().filter(|p| p.as_os_str() != "-");
    let json_stdout = args.json.is_some() && json_file.is_none();
    // Before the claims run (minutes), not after: a path that cannot be written fails now.
    if let Some(path) = json_file {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the report folder {}", args.out.display()))?;
    if args.quiet {
        mpmt_lab::lab::hide_progress();
    }
    let say = |line: &str| {
        if !args.quiet {
            eprintln!("{line}");
        }
    };
    let machine = mpmt_lab::measure::Machine::detect();
    say(&terminal::banner("lab", cfg.quick, &machine));
    let before_run = wait_for_quiet(&QuietPolicy::snapshot()).ok();
    let empty = |repeats: usize| LabReport {
        machine: machine.clone(),
        quick: cfg.quick,
        started_unix_s: 0,
        duration_s: 0.0,
        repeats,
        agreement: Vec::new(),
        claims: Vec::new(),
    };
    if let Some(w) = Document::of_this_build(empty(1), before_run.clone()).busy_warning() {
        eprintln!("warning: {w}");
    }
    let mut partial: Vec<mpmt_lab::lab::ClaimResult> = Vec::new();
    let mut write_error = None;
    let repeats = args.repeat as usize;
    let report = mpmt_lab::lab::run_repeated(&cfg, repeats, &mut |claim| {
        say(&terminal::claim_line(claim));
        partial.push(claim.clone());
        // Written after every claim, so a later failure loses nothing.
        let mut lab = empty(repeats);
        lab.agreement = mpmt_lab::lab::agreement(&partial);
        lab.claims = partial.clone();
        let snapshot = Document::of_this_build(lab, before_run.clone());
        let mut paths = vec![args.out.join("report.json")];
        paths.extend(json_file.cloned());
        for path in paths {
            if let Err(e) = write_json(&path, &snapshot) {
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
    let doc = Document::of_this_build(report, before_run);
    mpmt_lab::report::write_folder(&args.out, &doc, args.lang)?;
    if let Some(path) = json_file {
        write_json(path, &doc)?;
    }
    let mut out = io::stdout().lock();
    if json_stdout {
        write!(out, "{}", Json.export(Report::Lab(&doc, args.lang))?)?;
    } else {
        write!(out, "{}", Terminal.export(Report::Lab(&doc, args.lang))?)?;
        if let Some(path) = json_file {
            writeln!(out, "JSON report: {}", path.display())?;
        }
    }
    say(&format!(
        "report: {} (and report.json, report.md beside it)",
        args.out.join("index.html").display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let read = |path: &std::path::Path| -> anyhow::Result<Document> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the report {}", path.display()))?;
        Document::from_json(&text).with_context(|| format!("reading {}", path.display()))
    };
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    let label = |p: &std::path::Path| p.display().to_string();
    let comparison = mpmt_lab::report::Comparison::of(&label(&args.a), &a, &label(&args.b), &b);
    let exporter: &dyn Exporter = if args.json {
        &Json
    } else if args.markdown {
        &Markdown
    } else {
        &Terminal
    };
    write!(io::stdout().lock(), "{}", exporter.export(Report::Compare(&comparison))?)?;
    Ok(ExitCode::SUCCESS)
}

fn ipc(args: IpcArgs) -> anyhow::Result<ExitCode> {
    // Under mpirun, every rank but 0 only echoes rank 0's MPI messages, and prints nothing.
    let mpi = match mpmt_lab::bench::ipc::mpi::start(args.mpi_path.as_deref())
        .context("joining the MPI job")?
    {
        mpmt_lab::bench::ipc::mpi::Started::Front(mpi) => mpi,
        mpmt_lab::bench::ipc::mpi::Started::Partner(partner) => {
            return Ok(ExitCode::from(u8::try_from(partner.serve()).unwrap_or(1)));
        }
    };
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
    let report = mpmt_lab::bench::ipc::run_with_mpi(&cfg, &bar, mpi);
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

fn write_json(path: &std::path::Path, doc: &Document) -> anyhow::Result<()> {
    let text = doc.to_json()?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
