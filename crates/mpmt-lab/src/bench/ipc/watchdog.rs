//! The benchmark's watchdog: armed before each phase with the phase's budget, it kills every
//! registered peer (and interrupts the transports that cannot see a death by themselves) if
//! the phase outlives it (module docs of [`super`], "Bounded in time").

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::IpcError;
use mpmt::supervise::Killer;
use mpmt::transport::Interrupt;

/// Kills every registered peer when a phase outlives its deadline (module docs).
pub(super) struct Watchdog {
    /// `Some(deadline)` arms, `None` disarms; closing it ends the thread.
    arm: Option<Sender<Option<(Instant, Duration)>>>,
    state: Arc<WatchState>,
    thread: Option<JoinHandle<()>>,
}

/// A peer process to kill, and its transport's interrupt where it has one.
type Victim = (Killer, Option<Arc<dyn Interrupt>>);

/// Shared between the watchdog thread and the run.
#[derive(Default)]
struct WatchState {
    /// The limit of the phase that expired, once one has.
    fired: Mutex<Option<Duration>>,
    /// Whether the watchdog has fired (read without the lock).
    tripped: AtomicBool,
    /// Every peer process, and its transport's interrupt where it has one.
    victims: Mutex<Vec<Victim>>,
}

impl Watchdog {
    pub(super) fn start() -> Result<Watchdog, IpcError> {
        let (arm, armed) = crossbeam_channel::unbounded::<Option<(Instant, Duration)>>();
        let state = Arc::new(WatchState::default());
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("mpmt-ipc-watchdog".into())
            .spawn(move || {
                let mut current: Option<(Instant, Duration)> = None;
                loop {
                    let next = match current {
                        Some((deadline, _)) => armed.recv_deadline(deadline),
                        None => armed.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(change) => current = change,
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {
                            *shared.fired.lock().unwrap_or_else(|e| e.into_inner()) =
                                current.map(|(_, limit)| limit);
                            shared.tripped.store(true, Ordering::Release);
                            let victims = shared.victims.lock().unwrap_or_else(|e| e.into_inner());
                            for (killer, interrupt) in victims.iter() {
                                killer.kill();
                                if let Some(i) = interrupt {
                                    i.interrupt();
                                }
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|source| IpcError::Os { op: "spawning the watchdog thread", source })?;
        Ok(Watchdog { arm: Some(arm), state, thread: Some(thread) })
    }

    /// Adds a peer to kill (and a channel to interrupt) if a phase expires.
    pub(super) fn watch(&self, killer: Killer, interrupt: Option<Arc<dyn Interrupt>>) {
        self.state.victims.lock().unwrap_or_else(|e| e.into_inner()).push((killer, interrupt));
    }

    /// Arms the watchdog for a phase that may take `limit`.
    pub(super) fn arm(&self, limit: Duration) {
        if let Some(tx) = &self.arm {
            let _ = tx.send(Some((Instant::now() + limit, limit)));
        }
    }

    pub(super) fn disarm(&self) {
        if let Some(tx) = &self.arm {
            let _ = tx.send(None);
        }
    }

    /// The limit of the phase that expired, if one did.
    pub(super) fn fired(&self) -> Option<Duration> {
        if !self.state.tripped.load(Ordering::Acquire) {
            return None;
        }
        *self.state.fired.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.arm = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog").field("fired", &self.fired()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_kills_registered_peers_when_a_phase_expires() {
        let dog = Watchdog::start().unwrap();
        assert_eq!(dog.fired(), None);
        dog.arm(Duration::from_secs(60));
        dog.disarm();
        dog.arm(Duration::from_millis(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        while dog.fired().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(dog.fired(), Some(Duration::from_millis(10)));
    }
}
