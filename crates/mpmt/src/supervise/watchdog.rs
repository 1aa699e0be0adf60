//! The watchdog: the one thread that enforces time limits on children, in either or both of
//! two ways.
//!
//! * **Periodic checks** (a pool with a task timeout, [`Watchdog::start`]): every registered
//!   worker is asked whether a task overran the timeout; the worker acts on it (a process is
//!   killed, a thread's task is reported and the thread replaced). Checks run every
//!   `timeout / 20`, clamped to 1–100 ms, so a task is caught within about 5 % of its timeout.
//! * **An armed deadline** (a benchmark's phases, [`Watchdog::phases`]): the caller arms a
//!   limit before each phase and disarms it after; if a phase outlives its limit, every
//!   registered expiry action runs once (kill a peer process through its pidfd, interrupt a
//!   channel that cannot see the death by itself), so the blocked call fails, and
//!   [`Watchdog::fired`] tells the caller the failure was a timeout. After that it stays
//!   fired: later arms are ignored.
//!
//! The thread sleeps on a condition variable until the next check or the armed deadline,
//! whichever is first (without either it sleeps until woken), so a phase watchdog costs no
//! wake-ups while the phase runs, and stopping the thread is immediate.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Killer;

/// Something with tasks that can overrun.
pub(crate) trait Overdue: Send + Sync {
    /// Acts on every task that has run longer than `timeout`.
    fn check(&self, timeout: Duration);
}

/// What runs when an armed deadline passes.
type Action = Box<dyn Fn() + Send + Sync>;

struct Inner {
    /// For periodic checks: the task timeout and the interval between checks.
    periodic: Option<(Duration, Duration)>,
    /// Checked every interval, for as long as each lives.
    watched: Mutex<Vec<Weak<dyn Overdue>>>,
    /// Run, in the order registered, when an armed deadline passes.
    on_expiry: Mutex<Vec<Action>>,
    /// What the thread waits on; changes are signalled through `wake`.
    state: Mutex<State>,
    wake: Condvar,
}

/// The part of the watchdog that its users change while the thread waits.
#[derive(Default)]
struct State {
    /// Set on drop: the thread ends.
    stop: bool,
    /// The armed deadline and the limit it was armed with.
    armed: Option<(Instant, Duration)>,
    /// The limit of the phase that expired, once one has.
    fired: Option<Duration>,
}

/// The watchdog thread; stopped and joined on drop.
pub struct Watchdog {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("timeout", &self.inner.periodic.map(|(timeout, _)| timeout))
            .field("fired", &self.fired())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchdog {
    /// Starts the thread with periodic checks of every task against `timeout`.
    pub(crate) fn start(timeout: Duration) -> std::io::Result<Watchdog> {
        let tick = (timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(100));
        Watchdog::spawn(Some((timeout, tick)))
    }

    /// Starts the thread without periodic checks: it acts only when a deadline armed with
    /// [`arm`](Self::arm) passes.
    pub fn phases() -> std::io::Result<Watchdog> {
        Watchdog::spawn(None)
    }

    fn spawn(periodic: Option<(Duration, Duration)>) -> std::io::Result<Watchdog> {
        let inner = Arc::new(Inner {
            periodic,
            watched: Mutex::new(Vec::new()),
            on_expiry: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("mpmt-watchdog".into())
                .spawn(move || watch_loop(&inner))?
        };
        Ok(Watchdog { inner, thread: Some(thread) })
    }

    /// Watches `entry` for as long as it lives.
    pub(crate) fn watch(&self, entry: Weak<dyn Overdue>) {
        lock(&self.inner.watched).push(entry);
    }

    /// Runs `action` when an armed deadline passes (after the actions registered before it).
    pub fn on_expiry(&self, action: impl Fn() + Send + Sync + 'static) {
        lock(&self.inner.on_expiry).push(Box::new(action));
    }

    /// Kills the process of `killer` when an armed deadline passes.
    pub fn kill_on_expiry(&self, killer: Killer) {
        self.on_expiry(move || killer.kill());
    }

    /// Arms the watchdog for a phase that may take `limit`, replacing any armed deadline.
    /// Ignored once the watchdog has fired.
    pub fn arm(&self, limit: Duration) {
        let mut state = lock(&self.inner.state);
        if state.fired.is_none() {
            // A limit too large to add to now is no limit.
            state.armed = Instant::now().checked_add(limit).map(|at| (at, limit));
            self.inner.wake.notify_all();
        }
    }

    /// Disarms the deadline: the phase ended in time.
    pub fn disarm(&self) {
        lock(&self.inner.state).armed = None;
        self.inner.wake.notify_all();
    }

    /// The limit of the phase that expired, if one did.
    pub fn fired(&self) -> Option<Duration> {
        lock(&self.inner.state).fired
    }
}

/// The thread: sleeps until the next periodic check or the armed deadline, then does
/// whichever is due (module docs).
fn watch_loop(inner: &Inner) {
    let mut next_check = inner.periodic.map(|(_, tick)| Instant::now() + tick);
    let mut state = lock(&inner.state);
    loop {
        if state.stop {
            return;
        }
        let wake_at = [next_check, state.armed.map(|(at, _)| at)].into_iter().flatten().min();
        state = match wake_at {
            None => inner.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                inner.wake.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0
            }
        };
        if state.stop {
            return;
        }
        let now = Instant::now();
        if let Some((at, limit)) = state.armed
            && now >= at
        {
            state.armed = None;
            state.fired = Some(limit);
            drop(state);
            for action in lock(&inner.on_expiry).iter() {
                action();
            }
            state = lock(&inner.state);
            continue;
        }
        if let (Some((timeout, tick)), Some(due)) = (inner.periodic, next_check)
            && now >= due
        {
            drop(state);
            // A snapshot, so a check may register new entries without deadlock.
            let live: Vec<Arc<dyn Overdue>> = {
                let mut w = lock(&inner.watched);
                w.retain(|e| e.strong_count() > 0);
                w.iter().filter_map(Weak::upgrade).collect()
            };
            for entry in live {
                entry.check(timeout);
            }
            next_check = Some(Instant::now() + tick);
            state = lock(&inner.state);
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Polls `cond` for up to 10 s.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        cond()
    }

    #[test]
    fn an_expired_phase_runs_every_action_once() {
        let dog = Watchdog::phases().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let runs = runs.clone();
            dog.on_expiry(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(dog.fired(), None);
        dog.arm(Duration::from_secs(60));
        dog.disarm();
        dog.arm(Duration::from_millis(10));
        assert!(eventually(|| dog.fired().is_some()));
        assert_eq!(dog.fired(), Some(Duration::from_millis(10)));
        assert!(eventually(|| runs.load(Ordering::SeqCst) == 2));
        // Fired for good: a later arm is ignored and nothing runs twice.
        dog.arm(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_disarmed_phase_never_fires() {
        let dog = Watchdog::phases().unwrap();
        dog.arm(Duration::from_millis(20));
        dog.disarm();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(dog.fired(), None);
    }

    struct Counter(AtomicUsize);

    impl Overdue for Counter {
        fn check(&self, _timeout: Duration) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn periodic_checks_reach_live_entries() {
        let dog = Watchdog::start(Duration::from_millis(20)).unwrap();
        let entry = Arc::new(Counter(AtomicUsize::new(0)));
        let watched: Arc<dyn Overdue> = entry.clone();
        dog.watch(Arc::downgrade(&watched));
        assert!(eventually(|| entry.0.load(Ordering::SeqCst) >= 3));
    }
}
