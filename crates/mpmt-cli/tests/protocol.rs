//! Tasks a worker cannot run end in typed errors, and the worker survives them.

use mpmt::pool::{Model, PoolError, StartError, TaskError};
use mpmt::task::Task;
use mpmt::task::builtin::Noop;
use mpmt::transport::TransportKind;

use crate::common::{builder, process_pool};

/// A kind the `mpmt` binary's registry does not contain.
struct NotInTheWorker;

impl Task for NotInTheWorker {
    const NAME: &'static str = "not-in-the-worker";
    type Input = u32;
    type Output = u32;
    fn run(x: u32) -> u32 {
        x
    }
}

#[test]
fn unknown_kind_is_a_typed_error_and_the_worker_survives() {
    let pool = process_pool(1, TransportKind::Pipe);
    let pid = pool.stats().worker_pids[0];
    let err = pool.submit::<NotInTheWorker>(1).unwrap().wait().unwrap_err();
    assert_eq!(err, TaskError::UnknownKind { kind: "not-in-the-worker".into() });
    assert_eq!(pool.submit::<Noop>(9).unwrap().wait(), Ok(9));
    let stats = pool.stats();
    assert_eq!((stats.restarts, stats.worker_pids[0]), (0, pid), "same worker, no restart");
}

#[test]
fn the_thread_model_runs_any_kind_without_a_registry() {
    let pool = builder(Model::Threads(1)).build().unwrap();
    assert_eq!(pool.submit::<NotInTheWorker>(3).unwrap().wait(), Ok(3));
}

#[test]
fn a_worker_program_that_is_not_a_worker_fails_the_build_clearly() {
    let err = mpmt::pool::Pool::builder()
        .model(Model::Processes(1))
        .worker_program("/bin/true")
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("run_if_worker"), "{message}");
    assert!(
        matches!(err, PoolError::WorkerStart { cause: StartError::NotAWorker { .. } }),
        "{err:?}"
    );
    let err = mpmt::pool::Pool::builder()
        .model(Model::Processes(1))
        .worker_program("/nonexistent/mpmt")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("cannot start worker"), "{err}");
    assert!(matches!(err, PoolError::WorkerStart { cause: StartError::Spawn { .. } }), "{err:?}");
}

#[test]
fn a_tcp_peer_without_the_secret_is_refused_and_the_pool_keeps_serving() {
    use std::io::{Read, Write};

    let pool = process_pool(2, TransportKind::Tcp);
    let addr = pool.local_addr().expect("tcp pools listen on loopback");
    assert!(addr.ip().is_loopback());
    for attempt in [&b"MPMTTCP1 not the secret at all, not even close......"[..], b""] {
        let mut intruder = std::net::TcpStream::connect(addr).unwrap();
        intruder.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let _ = intruder.write_all(attempt);
        let _ = intruder.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        // The pool closes the connection without a word.
        let _ = intruder.read_to_end(&mut reply);
        assert!(reply.is_empty(), "the intruder got {reply:?}");
    }
    assert!(crate::common::eventually(|| pool.stats().rejected_peers == 2), "{:?}", pool.stats());
    let results: Vec<_> = pool.map::<Noop, _>(0..1000).collect();
    assert!(results.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    // A crash forces a new worker to connect: the listener still accepts real workers.
    let _ = pool.submit_job(mpmt::task::fault::FaultKind::Abort.job(0)).unwrap().wait();
    assert_eq!(pool.submit::<Noop>(7).unwrap().wait(), Ok(7));
}
