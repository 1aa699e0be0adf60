//! No worker process outlives its pool.

use mpmt::pool::Model;
use mpmt::task::builtin::Noop;
use mpmt::task::fault::FaultKind;
use mpmt::transport::TransportKind;

use crate::common::{alive, builder, children, eventually, process_pool};

#[test]
fn dropping_a_pool_leaves_no_worker() {
    let pool = process_pool(3, TransportKind::Pipe);
    let pids = pool.stats().worker_pids;
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|p| children().contains(p)));
    drop(pool);
    for pid in pids {
        assert!(!children().contains(&pid), "worker {pid} is still our child");
        assert!(!alive(pid), "worker {pid} still runs");
    }
}

#[test]
fn crashed_workers_are_reaped_not_left_as_zombies() {
    let pool = builder(Model::Processes(1)).build().unwrap();
    let first = pool.stats().worker_pids[0];
    let _ = pool.submit_job(FaultKind::Segfault.job(0)).unwrap().wait();
    assert_eq!(pool.submit::<Noop>(1).unwrap().wait(), Ok(1));
    assert!(eventually(|| !alive(first) && !children().contains(&first)));
    let pids = pool.shutdown().worker_pids;
    assert!(pids.is_empty(), "{pids:?}");
}
