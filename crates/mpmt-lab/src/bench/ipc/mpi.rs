//! MPI ping-pong beside the local transports (issue 15): when `mpmt` is built with the
//! feature `mpi` and started under `mpirun -n 2`, rank 0 runs `mpmt ipc` as usual and adds
//! one row per size for MPI between rank 0 and rank 1, which only echoes (the partner); ranks
//! 2… wait for the end. Without the feature, without mpirun or with one rank, the report
//! says MPI was not measured and why ([`MpiNote`]).
//!
//! The row is named `mpi-<path>`, the path MPI's messages take: `--mpi-path LABEL` when the
//! user names it, else detected from Open MPI's settings as mpirun passes them to the ranks
//! (`--mca btl self,tcp` reaches them as `OMPI_MCA_btl=self,tcp`) and from the ranks' hosts
//! ([`detect_path`]): `shm` on one host unless the BTLs exclude shared memory, `tcp` when TCP
//! is the only BTL, `ucx` with the UCX PML, `network` between hosts.
//!
//! The same statistics as every endpoint (`endpoint::measure`): the round-trip
//! series and the one-way stream runs, at the same sizes, in the same interleaved loop (MPI
//! is measured last at each size). Messages are MPI's own (raw bytes, `MPI_Send`/`MPI_Recv`
//! of `MPI_BYTE`, no mpmt frame header or checksum): what an MPI program pays. MPI waits by
//! polling (Open MPI's progress loop; `mpi_yield_when_idle` makes it yield between polls),
//! never by sleeping: [`super::Wake::Poll`]; its like-for-like baseline is the spinning
//! thread hand-off, as shm's is. The partner polls only while its row is measured: between
//! rows it checks for a message every millisecond, so it does not take a core from the local
//! transports' measurement.
//!
//! Bounded in time: the partner is this same program and only echoes; MPI is fail-stop, so
//! if a rank dies `mpirun` ends the job (MPI calls cannot be interrupted by the watchdog).

use serde::{Deserialize, Serialize};

use super::IpcError;
#[cfg(feature = "mpi")]
use super::endpoint::{Plan, StepError};
#[cfg(feature = "mpi")]
use super::{Latency, Throughput};

#[cfg(feature = "mpi")]
#[path = "mpi_ping.rs"]
mod ping;

/// Whether MPI was measured, where, and why not. Part of `mpmt ipc --json` (`mpi`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiNote {
    /// Whether the MPI rows were measured.
    pub measured: bool,
    /// The rows' endpoint name (`mpi-shm`, `mpi-tcp`, …), when measured.
    pub endpoint: Option<String>,
    /// How the path was named: `--mpi-path`, or the settings and hosts it was detected from.
    pub path_from: Option<String>,
    /// Hosts of rank 0 and rank 1 (`MPI_Get_processor_name`), when measured.
    pub hosts: Vec<String>,
    /// Ranks in the job (0 when not under mpirun).
    pub ranks: usize,
    /// In words: what was measured, or why not.
    pub note: String,
}

impl Default for MpiNote {
    /// The note of a report written before MPI rows existed.
    fn default() -> MpiNote {
        MpiNote::off(0, "not recorded (a report from before mpmt ipc measured MPI)")
    }
}

impl MpiNote {
    fn off(ranks: usize, why: &str) -> MpiNote {
        MpiNote {
            measured: false,
            endpoint: None,
            path_from: None,
            hosts: Vec::new(),
            ranks,
            note: format!("MPI not measured: {why}"),
        }
    }
}

/// Whether this process was started by an MPI launcher, and as how many ranks: Open MPI's
/// `OMPI_COMM_WORLD_SIZE`, MPICH/Hydra's `PMI_SIZE`, PMIx's `PMIX_SIZE`... as `env` reads them.
pub fn launched_ranks(env: &dyn Fn(&str) -> Option<String>) -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"]
        .into_iter()
        .find_map(|name| env(name)?.trim().parse().ok())
}

/// The path MPI's messages take between rank 0 and rank 1, and what it was read from
/// (module docs). `given` is `--mpi-path`; `env` reads this process's environment.
pub fn detect_path(
    given: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    same_host: bool,
) -> (String, String) {
    if let Some(label) = given {
        return (label.to_owned(), "--mpi-path".to_owned());
    }
    let pml = env("OMPI_MCA_pml").filter(|p| !p.trim().is_empty());
    let btl = env("OMPI_MCA_btl").filter(|b| !b.trim().is_empty());
    let hosts = if same_host { "one host" } else { "two hosts" };
    let from = |what: &str| format!("{what}, {hosts}");
    if let Some(pml) = &pml
        && pml.split(',').any(|p| p.trim() == "ucx")
    {
        return ("ucx".into(), from(&format!("OMPI_MCA_pml={pml}")));
    }
    let Some(btl) = btl else {
        let label = if same_host { "shm" } else { "network" };
        return (label.into(), from("Open MPI's default BTLs"));
    };
    let shm = |b: &str| matches!(b, "vader" | "sm" | "smcuda");
    let (excluded, list) = match btl.trim().strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, btl.trim()),
    };
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    let label = if excluded {
        // `^vader`: every BTL but those; shared memory unless it is among them.
        if same_host && !names.iter().any(|b| shm(b)) {
            "shm".to_owned()
        } else if names.contains(&"tcp") {
            "network".to_owned()
        } else {
            "tcp".to_owned()
        }
    } else {
        let usable: Vec<&str> = names.iter().copied().filter(|b| *b != "self").collect();
        if same_host && usable.iter().any(|b| shm(b)) {
            "shm".to_owned()
        } else if let Some(first) = usable.iter().find(|b| !shm(b)) {
            (*first).to_owned()
        } else {
            "self".to_owned()
        }
    };
    (label, from(&format!("OMPI_MCA_btl={btl}")))
}

/// CPUs listed by a kernel CPU list (`0-3,6`), as in `/sys/devices/system/cpu/online`.
pub fn cpu_list_len(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    Some(n)
}

/// When the launcher bound this rank to fewer CPUs than the machine has (Open MPI binds each
/// rank to a core by default), the local transports ran on those alone: a note saying so.
#[cfg(feature = "mpi")]
pub(crate) fn binding_note() -> Option<String> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let online = cpu_list_len(&online)?;
    let allowed = crate::measure::cpu::allowed_cpus().ok()?.len();
    (allowed < online).then(|| {
        format!(
            "; mpirun bound rank 0 to {allowed} of {online} CPUs, so the local transports and \
             their partners shared them: start with mpirun --bind-to none"
        )
    })
}

/// How this process takes part in `mpmt ipc` under MPI ([`start`]).
#[derive(Debug)]
pub enum Started {
    /// Rank 0, or no MPI at all: run the benchmark with this.
    Front(MpiPing),
    /// Rank 1 or above: serve rank 0 ([`MpiPartner::serve`]) and exit, printing nothing.
    Partner(MpiPartner),
}

/// Rank 0's side: the MPI endpoint, if measured, and the note for the report.
#[derive(Debug)]
pub struct MpiPing {
    note: MpiNote,
    #[cfg(feature = "mpi")]
    link: Option<ping::Front>,
}

/// The side of a rank other than 0: echoes rank 0's messages until told to stop.
#[derive(Debug)]
pub struct MpiPartner {
    #[cfg(feature = "mpi")]
    inner: ping::Partner,
    /// None without MPI.
    #[cfg(not(feature = "mpi"))]
    never: std::convert::Infallible,
}

impl MpiPartner {
    /// Serves rank 0 until it says stop; returns the process's exit code.
    pub fn serve(self) -> i32 {
        #[cfg(feature = "mpi")]
        return self.inner.serve();
        #[cfg(not(feature = "mpi"))]
        match self.never {}
    }
}

/// Joins MPI when this process was started under an MPI launcher and built with the feature
/// (module docs); `path` is `--mpi-path`. Only `mpmt ipc` calls it, once, first.
pub fn start(path: Option<&str>) -> Result<Started, IpcError> {
    let env = |name: &str| std::env::var(name).ok();
    let Some(ranks) = launched_ranks(&env) else {
        return Ok(Started::Front(MpiPing::off(0, not_launched())));
    };
    #[cfg(feature = "mpi")]
    return ping::start(path, ranks, &env);
    #[cfg(not(feature = "mpi"))]
    {
        let _ = path;
        Ok(Started::Front(MpiPing::off(ranks, &built_without())))
    }
}

fn not_launched() -> &'static str {
    if cfg!(feature = "mpi") {
        "not started under mpirun (mpirun -n 2 mpmt ipc … adds MPI rows)"
    } else {
        "this mpmt was built without the mpi feature (cargo build --release --features mpi, \
         then mpirun -n 2 mpmt ipc …)"
    }
}

#[cfg(not(feature = "mpi"))]
fn built_without() -> String {
    format!("started under an MPI launcher, but {}", not_launched())
}

impl MpiPing {
    /// Not measured, for `why`.
    pub fn off(ranks: usize, why: &str) -> MpiPing {
        MpiPing {
            note: MpiNote::off(ranks, why),
            #[cfg(feature = "mpi")]
            link: None,
        }
    }

    /// Not asked for: [`super::run()`] as the lab calls it.
    pub fn not_asked() -> MpiPing {
        let env = |name: &str| std::env::var(name).ok();
        match launched_ranks(&env) {
            None => MpiPing::off(0, not_launched()),
            Some(ranks) => MpiPing::off(ranks, "only mpmt ipc measures MPI, not the lab"),
        }
    }

    /// The row's endpoint name, when MPI is measured.
    pub(super) fn name(&self) -> Option<&str> {
        self.note.endpoint.as_deref()
    }

    /// Measures MPI at `size` (module docs); `None` when it is not measured.
    #[cfg(feature = "mpi")]
    pub(super) fn measure(
        &mut self,
        size: usize,
        plan: &Plan,
    ) -> Option<Result<(Latency, Throughput), StepError>> {
        Some(self.link.as_mut()?.measure(size, plan))
    }

    /// Measures MPI at `size`: never, in a build without the feature.
    #[cfg(not(feature = "mpi"))]
    pub(super) fn measure(
        &mut self,
        _size: usize,
        _plan: &super::endpoint::Plan,
    ) -> Option<Result<(super::Latency, super::Throughput), super::endpoint::StepError>> {
        None
    }

    /// Stops the partners (MPI is finalized when this is dropped) and returns the note.
    pub(super) fn finish(self) -> MpiNote {
        self.note.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_path_is_read_from_open_mpis_settings_and_the_hosts() {
        let path = |vars: &[(&str, &str)], same_host| detect_path(None, &env(vars), same_host).0;
        assert_eq!(path(&[], true), "shm");
        assert_eq!(path(&[], false), "network");
        assert_eq!(path(&[("OMPI_MCA_btl", "self,tcp"), ("OMPI_MCA_pml", "ob1")], true), "tcp");
        assert_eq!(path(&[("OMPI_MCA_btl", "self,vader,tcp")], true), "shm");
        assert_eq!(path(&[("OMPI_MCA_btl", "self,vader,tcp")], false), "tcp");
        assert_eq!(path(&[("OMPI_MCA_btl", "^vader")], true), "tcp");
        assert_eq!(path(&[("OMPI_MCA_btl", "^openib")], true), "shm");
        assert_eq!(path(&[("OMPI_MCA_pml", "ucx")], true), "ucx");
        let (label, from) = detect_path(None, &env(&[("OMPI_MCA_btl", "self,tcp")]), true);
        assert_eq!((label.as_str(), from.as_str()), ("tcp", "OMPI_MCA_btl=self,tcp, one host"));
        let (label, from) = detect_path(Some("ib"), &env(&[("OMPI_MCA_btl", "tcp")]), true);
        assert_eq!((label.as_str(), from.as_str()), ("ib", "--mpi-path"));
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(cpu_list_len("0-1\n"), Some(2));
        assert_eq!(cpu_list_len("0-3,6,8-9"), Some(7));
        assert_eq!(cpu_list_len("0"), Some(1));
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len("x"), None);
    }

    #[test]
    fn a_launcher_is_recognised_by_its_environment() {
        assert_eq!(launched_ranks(&env(&[])), None);
        assert_eq!(launched_ranks(&env(&[("OMPI_COMM_WORLD_SIZE", "2")])), Some(2));
        assert_eq!(launched_ranks(&env(&[("PMI_SIZE", "3")])), Some(3));
        assert_eq!(launched_ranks(&env(&[("PMI_SIZE", "x")])), None);
    }

    #[test]
    // Without the feature, `Started::Partner` cannot be built: the pattern is irrefutable.
    #[allow(irrefutable_let_patterns)]
    fn outside_mpirun_the_note_says_why() {
        // The test runner is not an MPI rank.
        if launched_ranks(&|n| std::env::var(n).ok()).is_some() {
            return;
        }
        let Started::Front(ping) = start(None).unwrap() else { panic!("a partner outside MPI") };
        let note = ping.finish();
        assert!(!note.measured && note.endpoint.is_none());
        assert!(note.note.starts_with("MPI not measured: "), "{}", note.note);
        assert_eq!(note.note.contains("without the mpi feature"), !cfg!(feature = "mpi"));
        let old: MpiNote = MpiNote::default();
        assert!(old.note.contains("not recorded"));
    }
}
