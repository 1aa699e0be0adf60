//! The watchdog: one thread per pool (only when a task timeout is set) that periodically asks
//! every registered worker whether a task overran the timeout; the worker acts on it (a
//! process is killed, a thread's task is reported and the thread replaced).
//!
//! Checks run every `timeout / 20`, clamped to 1–100 ms, so a task is caught within about 5 %
//! of its timeout; the thread sleeps on a condition variable in between, so stopping it is
//! immediate.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Something with tasks that can overrun.
pub(crate) trait Overdue: Send + Sync {
    /// Acts on every task that has run longer than `timeout`.
    fn check(&self, timeout: Duration);
}

struct Inner {
    timeout: Duration,
    watched: Mutex<Vec<Weak<dyn Overdue>>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The watchdog thread; stopped and joined on drop.
pub(crate) struct Watchdog {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("timeout", &self.inner.timeout).finish()
    }
}

impl Watchdog {
    /// Starts the thread.
    pub(crate) fn start(timeout: Duration) -> std::io::Result<Watchdog> {
        let inner = Arc::new(Inner {
            timeout,
            watched: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let tick = (timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new().name("mpmt-watchdog".into()).spawn(move || {
                let mut stop = inner.stop.lock().unwrap_or_else(|e| e.into_inner());
                while !*stop {
                    stop = inner.wake.wait_timeout(stop, tick).unwrap_or_else(|e| e.into_inner()).0;
                    if *stop {
                        break;
                    }
                    drop(stop);
                    // A snapshot, so a check may register new entries without deadlock.
                    let live: Vec<Arc<dyn Overdue>> = {
                        let mut w = inner.watched.lock().unwrap_or_else(|e| e.into_inner());
                        w.retain(|e| e.strong_count() > 0);
                        w.iter().filter_map(Weak::upgrade).collect()
                    };
                    for entry in live {
                        entry.check(inner.timeout);
                    }
                    stop = inner.stop.lock().unwrap_or_else(|e| e.into_inner());
                }
            })?
        };
        Ok(Watchdog { inner, thread: Some(thread) })
    }

    /// Watches `entry` for as long as it lives.
    pub(crate) fn watch(&self, entry: Weak<dyn Overdue>) {
        self.inner.watched.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.inner.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
