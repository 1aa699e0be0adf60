//! The tcp transport's own guarantees: loopback only, the secret stays off the command line,
//! and a peer without the secret is refused while the pool keeps accepting its workers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::*;
use crate::transport::tests::check_stream;

/// Reads until the pool closes the connection; a refused peer gets no answer, only the end.
fn assert_closed_by_pool(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the pool to close the connection, got {other:?}"),
    }
}

#[test]
fn peers_without_the_secret_are_refused_and_workers_still_get_in() {
    let t = TcpTransport::new().unwrap();
    let addr = t.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let pending = t.open_pending().unwrap();

    // A wrong secret with the right nonce.
    let mut wrong = TcpStream::connect(addr).unwrap();
    let mut hello = [0u8; HANDSHAKE_LEN];
    hello[..8].copy_from_slice(&MAGIC);
    hello[8 + SECRET_LEN..].copy_from_slice(&pending.nonce);
    wrong.write_all(&hello).unwrap();
    assert_closed_by_pool(&mut wrong);
    assert_eq!(t.rejected_peers(), 1);

    // No secret at all: a short greeting, then the peer stops sending.
    let mut missing = TcpStream::connect(addr).unwrap();
    missing.write_all(b"MPMTTCP1").unwrap();
    missing.shutdown(Shutdown::Write).unwrap();
    assert_closed_by_pool(&mut missing);
    assert_eq!(t.rejected_peers(), 2);

    // The worker-side code path with a wrong secret reports the refusal.
    let err = connect_to(addr, &pending.nonce, &[7; SECRET_LEN]).unwrap_err();
    assert!(matches!(err, TransportError::Handshake(_)), "{err}");
    assert_eq!(t.rejected_peers(), 3);

    // The right secret is still accepted, and the channel works.
    let worker = connect_to(addr, &pending.nonce, &t.shared.secret).unwrap();
    let pool = Box::new(pending).establish(Instant::now() + Duration::from_secs(10)).unwrap();
    check_stream(pool, worker, &[0, 5, 70_000]);
    assert_eq!(t.rejected_peers(), 3);
}

#[test]
fn a_silent_peer_is_refused_after_the_handshake_timeout_and_blocks_nobody() {
    let t = TcpTransport::new().unwrap();
    let mut silent = TcpStream::connect(t.local_addr().unwrap()).unwrap();
    // Accepted beside the silent peer, not behind it.
    let (a, b) = t.pair().unwrap();
    check_stream(a, b, &[1, 2, 3]);
    assert_closed_by_pool(&mut silent);
    assert_eq!(t.rejected_peers(), 1);
}

/// Issue 14.2: handshakes were served one at a time with a timeout per read, so 130 silent
/// peers delayed a worker by 130 s (its start failed), and a peer trickling one byte per
/// 0.9 s was never refused. Now many silent peers and a trickling one are connected while
/// workers get in at once (`pair` gives up after 5 s, far less than the peers' handshake
/// time in a row), and the trickling peer is refused at its one deadline.
#[test]
fn silent_and_trickling_peers_delay_no_worker_and_are_refused() {
    let t = TcpTransport::new().unwrap();
    let addr = t.local_addr().unwrap();
    let silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut trickle = TcpStream::connect(addr).unwrap();
    let trickler = {
        let mut trickle = trickle.try_clone().unwrap();
        std::thread::spawn(move || {
            // One byte of the magic at a time, never a whole handshake; stops once refused.
            for _ in 0..HANDSHAKE_LEN - 1 {
                if trickle.write_all(b"M").is_err() {
                    return;
                }
                std::thread::sleep(HANDSHAKE_TIMEOUT / 10);
            }
        })
    };
    for _ in 0..10 {
        let (a, b) = t.pair().unwrap();
        check_stream(a, b, &[1, 100]);
    }
    assert_closed_by_pool(&mut trickle);
    trickler.join().unwrap();
    for mut s in silent {
        assert_closed_by_pool(&mut s);
    }
    assert_eq!(t.rejected_peers(), 21);
}

/// Issue 14.2: at most `MAX_PENDING_PEERS` handshakes are pending; more connections evict the
/// oldest, and a worker still gets in.
#[test]
fn pending_handshakes_are_capped_and_a_worker_still_gets_in() {
    let t = TcpTransport::new().unwrap();
    let addr = t.local_addr().unwrap();
    let extra = 10;
    let mut silent: Vec<TcpStream> =
        (0..MAX_PENDING_PEERS + extra).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // The oldest were evicted as the newest arrived.
    for s in &mut silent[..extra] {
        assert_closed_by_pool(s);
    }
    assert!(t.rejected_peers() >= extra as u64);
    let (a, b) = t.pair().unwrap();
    check_stream(a, b, &[7]);
}

/// Issue 14.2: dropping the transport used to join an acceptor stuck reading silent peers
/// one after another (880 s with a peer that kept connecting). Now the acceptor sees the stop
/// signal on its next turn: it returns before any silent peer's handshake time is up, so
/// none of them is counted as refused.
#[test]
fn dropping_the_transport_returns_at_once_with_silent_peers_connected() {
    let t = TcpTransport::new().unwrap();
    let addr = t.local_addr().unwrap();
    let silent: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let shared = t.shared.clone();
    drop(t);
    // One by one, each silent peer would have cost a whole handshake timeout first.
    assert!(shared.rejected.load(Ordering::SeqCst) < silent.len() as u64);
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_connection_for_an_unknown_or_abandoned_worker_is_refused() {
    let t = TcpTransport::new().unwrap();
    let pending = t.open_pending().unwrap();
    let nonce = pending.nonce;
    drop(pending);
    let err = connect_to(t.local_addr().unwrap(), &nonce, &t.shared.secret).unwrap_err();
    assert!(matches!(err, TransportError::Handshake(_)), "{err}");
    assert_eq!(t.rejected_peers(), 1);
}

#[test]
fn the_secret_travels_in_the_environment_not_on_the_command_line() {
    let t = TcpTransport::new().unwrap();
    let pending = t.open().unwrap();
    let secret = to_hex(&t.shared.secret);
    assert!(!pending.child_arg().contains(&secret));
    assert_eq!(pending.child_env(), vec![(SECRET_ENV, secret.clone())]);
    assert!(!format!("{t:?}").contains(&secret), "Debug must not print the secret");
}

#[test]
fn a_worker_argument_outside_loopback_is_refused() {
    let nonce = to_hex(&[0u8; NONCE_LEN]);
    for arg in
        [format!("192.0.2.1:9,{nonce}"), "127.0.0.1:9".to_owned(), "127.0.0.1:9,zz".to_owned()]
    {
        let err = connect(&arg).unwrap_err();
        assert!(matches!(err, TransportError::BadArgument { .. }), "{arg}: {err}");
    }
}

#[test]
fn dropping_the_transport_stops_the_acceptor_and_closes_the_listener() {
    let t = TcpTransport::new().unwrap();
    let addr = t.local_addr().unwrap();
    drop(t);
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn secrets_compare_and_encode_as_expected() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    let bytes: [u8; 4] = [0, 0x7f, 0xa0, 0xff];
    assert_eq!(to_hex(&bytes), "007fa0ff");
    assert_eq!(from_hex::<4>("007fa0ff"), Some(bytes));
    assert_eq!(from_hex::<4>("007fa0f"), None);
    assert_eq!(from_hex::<4>("007fa0fg"), None);
}
