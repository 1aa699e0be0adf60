//! No worker process outlives its pool.

use mpmt::pool::{Model, Spawn};
use mpmt::task::builtin::Noop;
use mpmt::task::fault::FaultKind;

use crate::common::{alive, builder, children, eventually};

/// Both spawn modes; with the fork server, the server goes too.
#[test]
fn dropping_a_pool_leaves_no_worker() {
    for spawn in [Spawn::ForkServer, Spawn::Exec] {
        let pool = builder(Model::Processes(3)).spawn(spawn).build().unwrap();
        let stats = pool.stats();
        let pids: Vec<u32> =
            stats.worker_pids.iter().copied().chain(stats.fork_server_pid).collect();
        assert_eq!(pids.len(), if spawn == Spawn::Exec { 3 } else { 4 });
        assert!(pids.iter().all(|p| children().contains(p)));
        drop(pool);
        for pid in pids {
            assert!(!children().contains(&pid), "{spawn:?}: {pid} is still our child");
            assert!(!alive(pid), "{spawn:?}: {pid} still runs");
        }
    }
}

#[test]
fn crashed_workers_are_reaped_not_left_as_zombies() {
    for spawn in [Spawn::ForkServer, Spawn::Exec] {
        crashed_worker_is_reaped(spawn);
    }
}

fn crashed_worker_is_reaped(spawn: Spawn) {
    let pool = builder(Model::Processes(1)).spawn(spawn).build().unwrap();
    let first = pool.stats().worker_pids[0];
    let _ = pool.submit_job(FaultKind::Segfault.job(0)).unwrap().wait();
    assert_eq!(pool.submit::<Noop>(1).unwrap().wait(), Ok(1));
    assert!(eventually(|| !alive(first) && !children().contains(&first)));
    let pids = pool.shutdown().worker_pids;
    assert!(pids.is_empty(), "{pids:?}");
}
