//! The parent's side of a peer process ([`super::peer`] is the child's): starting
//! `<exe> __ipc-peer`, connecting it over one transport, telling a hang from a death when a
//! step fails, and stopping and reaping it at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::endpoint::{Framed, StepError};
use super::peer::{Mode, PeerArgs};
use super::{EXIT_GRACE, IpcConfig, IpcError, PEER_COMMAND, START_TIMEOUT, step_error};
use crate::measure::Warning;
use mpmt::supervise::{self, Exit, Spawned, Watchdog};
use mpmt::transport::{Transport, TransportKind};

/// Starts `<exe> __ipc-peer ARGS` with exactly `fds` inherited.
pub(super) fn spawn_peer(
    endpoint: &str,
    cfg: &IpcConfig,
    args: &PeerArgs,
    env: &[(&str, String)],
    fds: &[std::os::fd::RawFd],
) -> Result<Spawned, IpcError> {
    let mut argv = vec![PEER_COMMAND.to_owned()];
    argv.extend(args.to_args());
    supervise::spawn(&cfg.exe, &argv, env, fds).map_err(|source| IpcError::Spawn {
        endpoint: endpoint.to_owned(),
        exe: cfg.exe.clone(),
        source,
    })
}

/// A connected peer process of one transport. Field order is drop order: the channel closes
/// before the process is killed and reaped.
pub(super) struct PeerProcess {
    pub(super) kind: TransportKind,
    pub(super) framed: Framed,
    spawned: Spawned,
    /// The transport's pool-wide state (a TCP listener) lives as long as the peer.
    _transport: Arc<dyn Transport>,
}

impl PeerProcess {
    pub(super) fn start(
        kind: TransportKind,
        cfg: &IpcConfig,
        pin: Option<usize>,
        watchdog: &Watchdog,
    ) -> Result<PeerProcess, IpcError> {
        let name = kind.name();
        let setup = |source| IpcError::Transport { endpoint: name.to_owned(), source };
        let transport = kind.create().map_err(setup)?;
        let pending = transport.open().map_err(setup)?;
        let args = PeerArgs {
            mode: Mode::Echo { link: pending.child_arg() },
            parent: std::process::id(),
            pin,
        };
        let spawned = spawn_peer(name, cfg, &args, &pending.child_env(), &pending.child_fds())?;
        watchdog.kill_on_expiry(spawned.killer());
        watchdog.arm(START_TIMEOUT);
        let link = pending.establish(Instant::now() + START_TIMEOUT).map_err(setup)?;
        let (framed, interrupt) = Framed::new(link);
        if let Some(interrupt) = interrupt {
            watchdog.on_expiry(move || interrupt.interrupt());
        }
        let mut peer = PeerProcess { kind, framed, spawned, _transport: transport };
        let hello = peer.framed.await_hello();
        watchdog.disarm();
        hello.map_err(|e| peer.failure(e, watchdog))?;
        Ok(peer)
    }

    /// The peer's process id: its main thread serves the link (`peer.rs`).
    pub(super) fn pid(&self) -> u32 {
        self.spawned.pid
    }

    /// The error to report for a failed step: a timeout if the watchdog fired, the peer's
    /// death if it died, the step's own error otherwise.
    pub(super) fn failure(&mut self, error: StepError, watchdog: &Watchdog) -> IpcError {
        let endpoint = self.kind.name().to_owned();
        if let Some(after) = watchdog.fired() {
            return IpcError::TimedOut { endpoint, after };
        }
        if let Ok(Some(exit)) = self.spawned.wait_timeout(Duration::from_millis(200)) {
            return IpcError::PeerDied { endpoint, exit };
        }
        step_error(&endpoint, error)
    }

    /// Asks the peer to exit and reaps it; a warning if it did not exit cleanly.
    pub(super) fn stop(mut self) -> Option<Warning> {
        self.framed.shutdown();
        let PeerProcess { kind, framed, mut spawned, _transport } = self;
        drop(framed);
        match spawned.wait_or_kill(EXIT_GRACE) {
            Exit::Code { code: 0 } => None,
            exit => Some(Warning::PeerExit { endpoint: kind.to_string(), exit }),
        }
    }
}
