//! The quiet-machine probe against a real busy machine, in its own test binary.
//!
//! The probe counts the CPU time of every process but its own, so other tests running on
//! this process's threads at the same time would starve the spinners and lower the figure
//! the test checks; alone in its binary it sees only the spinners (test binaries run one
//! after another).

use std::process::{Child, Command};
use std::time::Duration;

use mpmt_lab::measure::cpu::allowed_cpus;
use mpmt_lab::measure::quiet::{QuietPolicy, wait_for_quiet};

/// Busy-loop processes, one per allowed CPU, killed and reaped when dropped.
struct Spinners(Vec<Child>);

impl Drop for Spinners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_synthetic_busy_loop_is_reported_busy_and_the_wait_gives_up() {
    let n = allowed_cpus().unwrap().len().clamp(1, 64);
    let spin = || Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let _spinners = Spinners((0..n).map(|_| spin()).collect());
    let policy = QuietPolicy {
        window: Duration::from_millis(100),
        threshold_pct: 15.0,
        max_wait: Duration::from_millis(400),
    };
    let q = wait_for_quiet(&policy).unwrap();
    // Every allowed CPU spins in another process: far above 15 % of those CPUs (the
    // spinners count, this process's own time does not).
    assert!(q.busy_pct > 15.0, "{q:?}");
    assert!(!q.quiet);
    assert!(q.waited_s >= 0.3, "{q:?}");
    assert_eq!(q.cpus.len(), n);
}
