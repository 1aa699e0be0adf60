//! Panics stop at the task boundary.
//!
//! [`catch`] runs a task under `catch_unwind` and turns a panic into a [`PanicReport`] with
//! the message and, thanks to a process-wide panic hook, the location. The hook is installed
//! once ([`install_hook`]); it records and silences panics raised *inside a task* (the outcome
//! carries them to the caller, so printing them too would only be noise) and hands every other
//! panic to the hook that was there before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use serde::{Deserialize, Serialize};

/// A panic caught at the task boundary (in a worker process, carried to the pool as an
/// `Outcome` body; see [`crate::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicReport {
    /// The panic message.
    pub message: String,
    /// `file:line:column`, when the panic hook saw it.
    pub location: Option<String>,
}

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the task-aware panic hook (idempotent).
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) {
                let location = info.location().map(|l| l.to_string());
                LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Resets the in-task flag even if the closure unwinds.
struct InTask;

impl InTask {
    fn enter() -> InTask {
        IN_TASK.with(|f| f.set(true));
        InTask
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|f| f.set(false));
    }
}

/// Runs `f`; a panic becomes `Err` with its message and location.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, PanicReport> {
    let result = {
        let _guard = InTask::enter();
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    result.map_err(|payload| PanicReport {
        message: payload_message(&*payload),
        location: LOCATION.with(|slot| slot.borrow_mut().take()),
    })
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic payload of unknown type".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_becomes_report_with_location() {
        install_hook();
        let r = catch(|| -> u32 { panic!("boom {}", 7) });
        let report = r.unwrap_err();
        assert_eq!(report.message, "boom 7");
        assert!(report.location.unwrap().contains("unwind.rs"));
        assert_eq!(catch(|| 5).unwrap(), 5);
        assert!(!IN_TASK.with(Cell::get));
    }
}
