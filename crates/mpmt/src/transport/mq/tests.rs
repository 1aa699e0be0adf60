//! The mq transport's own guarantees: owner-only queues, names that are gone before the
//! worker starts, sizes that fit several workers, interrupts, and a dead peer seen as end of
//! stream.

use std::io::ErrorKind;
use std::os::fd::IntoRawFd;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::transport::tests::check_stream;

const PATIENCE: Duration = Duration::from_secs(10);

/// The argument a worker would get, with duplicates of the inherited descriptors standing in
/// for inheritance (so the pending channel keeps its own).
fn worker_arg(p: &PendingMq) -> String {
    let dup = |fd: BorrowedFd<'_>| rustix::io::fcntl_dupfd_cloexec(fd, 3).unwrap().into_raw_fd();
    format!(
        "{},{},{},{}",
        dup(p.child_rx.as_fd()),
        dup(p.child_tx.as_fd()),
        dup(p.child_peer_life.as_fd()),
        dup(p.child_own_life.as_fd())
    )
}

fn names(p: &PendingMq) -> [String; 2] {
    p.names.clone()
}

/// A name is free again: creating it exclusively succeeds (then it is removed again).
fn assert_gone(name: &str) {
    let tiny = Geometry { maxmsg: 1, msgsize: 64 };
    let attr = MqAttr::new(0, tiny.maxmsg as _, tiny.msgsize as _, 0);
    let flags = MQ_OFlag::O_RDWR | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_CLOEXEC;
    match mq_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR, Some(&attr)) {
        Ok(mqd) => {
            let _ = mq_close(mqd);
            mq_unlink(name).unwrap();
        }
        Err(e) => panic!("queue {name} still exists or cannot be created: {e}"),
    }
}

/// Runs `f` on a thread and waits for it at most `PATIENCE`, so no test can hang.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE).expect("the operation did not end in time")
}

#[test]
fn queues_are_owner_only() {
    let p = MqTransport::new().open_pending().unwrap();
    for queue in [&p.to_worker, &p.to_pool] {
        let mode = rustix::fs::fstat(queue).unwrap().st_mode & 0o777;
        assert_eq!(mode, 0o600, "queue mode {mode:o}");
    }
    let worker = connect(&worker_arg(&p)).unwrap();
    drop(worker);
}

#[test]
fn names_are_gone_before_the_worker_starts() {
    let p = MqTransport::new().open_pending().unwrap();
    for name in &names(&p) {
        assert_gone(name);
    }
    let worker = connect(&worker_arg(&p)).unwrap();
    let pool = Box::new(p).establish(Instant::now() + PATIENCE).unwrap();
    // The unlinked queues carry the link.
    bounded(move || check_stream(pool, worker, &[0, 10, 5000, 70_000]));
}

#[test]
fn a_blocked_read_fails_promptly_after_interrupt() {
    let (a, b) = MqTransport::new().pair().unwrap();
    let interrupt = b.interrupt.clone().unwrap();
    let mut rx = b.rx;
    let (started_tx, started) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        rx.read(&mut buf)
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    interrupt.interrupt();
    let result = bounded(move || reader.join().unwrap());
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    drop(a);
}

#[test]
fn a_write_blocked_on_a_full_queue_fails_promptly_after_interrupt() {
    let (a, b) = MqTransport::new().pair().unwrap();
    let interrupt = a.interrupt.clone().unwrap();
    let mut tx = a.tx;
    // Far more than the queue holds, and nobody reads.
    let writer = std::thread::spawn(move || tx.write_all(&[&vec![7u8; 1 << 20]]));
    std::thread::sleep(Duration::from_millis(20));
    interrupt.interrupt();
    let err = bounded(move || writer.join().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    drop(b);
}

#[test]
fn a_writer_facing_a_full_queue_and_a_dead_peer_gets_broken_pipe() {
    let (a, b) = MqTransport::new().pair().unwrap();
    drop(b);
    let mut tx = a.tx;
    let err = bounded(move || tx.write_all(&[&vec![7u8; 1 << 20]])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[test]
fn a_dead_peer_reads_as_end_of_stream_after_its_last_bytes() {
    let (a, b) = MqTransport::new().pair().unwrap();
    let (mut tx, mut rx) = (a.tx, b.rx);
    tx.write_all(&[b"last words"]).unwrap();
    drop((tx, a.rx));
    let got = bounded(move || {
        let mut buf = [0u8; 64];
        let n = rx.read(&mut buf).unwrap();
        (buf[..n].to_vec(), rx.read(&mut buf).unwrap())
    });
    assert_eq!(got, (b"last words".to_vec(), 0));
}

#[test]
fn the_default_sizes_leave_room_for_eight_workers() {
    let g = Geometry::for_this_machine();
    assert!(g.maxmsg <= 10 && g.msgsize <= 8192, "{g:?}");
    if let Some(budget) = rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current {
        // The kernel adds a little bookkeeping per message on top of the payload bytes.
        let per_worker = g.bytes_per_worker() + 2 * g.maxmsg * 128;
        assert!(
            8 * per_worker as u64 <= budget,
            "{g:?}: 8 workers need {} of {budget} bytes",
            8 * per_worker
        );
    }
}

#[test]
fn queues_beyond_the_size_limits_give_a_limit_error_that_says_what_to_do() {
    let t = MqTransport::with_geometry(Geometry { maxmsg: 100_000, msgsize: 8192 });
    let err = t.open().unwrap_err();
    assert!(matches!(err, TransportError::Limit { .. }), "{err}");
    assert!(err.to_string().contains("msg_max"), "{err}");
    let err = open_error(Errno::EMFILE, Geometry::for_this_machine());
    let text = err.to_string();
    assert!(text.contains("RLIMIT_MSGQUEUE") && text.contains("ulimit -q"), "{text}");
}

#[test]
fn connect_refuses_what_is_not_four_queue_and_lifeline_descriptors() {
    for arg in ["", "/a,/b", "3,4", "x,y,z,w"] {
        let err = connect(arg).unwrap_err();
        assert!(matches!(err, TransportError::BadArgument { .. }), "{arg}: {err}");
    }
    // Open descriptors, but pipes where the queues should be.
    let (a, b) = lifeline().unwrap();
    let (c, d) = lifeline().unwrap();
    let arg =
        format!("{},{},{},{}", a.into_raw_fd(), b.into_raw_fd(), c.into_raw_fd(), d.into_raw_fd());
    let err = connect(&arg).unwrap_err();
    assert!(err.to_string().contains("not a message queue"), "{err}");
}
