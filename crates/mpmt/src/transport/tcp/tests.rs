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
    let _silent = TcpStream::connect(t.local_addr().unwrap()).unwrap();
    // Accepted behind the silent peer, at most HANDSHAKE_TIMEOUT later.
    let (a, b) = t.pair().unwrap();
    assert_eq!(t.rejected_peers(), 1);
    check_stream(a, b, &[1, 2, 3]);
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
