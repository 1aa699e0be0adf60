//! Where the two endpoints of every measurement run (module docs of [`super`], "Placement"):
//! left to the scheduler by default, or the measuring thread pinned to the first allowed CPU
//! and every partner to the second with [`super::IpcConfig::pin`].

use super::{IpcError, Placement};
use crate::measure::Warning;
use crate::measure::cpu::{AffinityGuard, allowed_cpus, pin_current_thread};

/// Decides and applies the placement (module docs); the guard unpins the caller at the end.
pub(super) fn place(
    pin: bool,
    warnings: &mut Vec<Warning>,
) -> Result<(Placement, Option<AffinityGuard>), IpcError> {
    let unpinned = |note: &str| Placement {
        pinned: false,
        parent_cpu: None,
        peer_cpu: None,
        note: note.to_owned(),
    };
    if !pin {
        warnings.push(Warning::Unpinned);
        return Ok((unpinned("left to the scheduler (not pinned)"), None));
    }
    let cpus = allowed_cpus()?;
    let [a, b, ..] = cpus[..] else {
        warnings.push(Warning::PinNeedsTwoCpus);
        return Ok((unpinned("not pinned: only one CPU is available"), None));
    };
    let guard = pin_current_thread(a)?;
    let placement = Placement {
        pinned: true,
        parent_cpu: Some(a),
        peer_cpu: Some(b),
        note: format!("pinned: measuring thread on CPU {a}, every partner on CPU {b}"),
    };
    Ok((placement, Some(guard)))
}
