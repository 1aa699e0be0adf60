//! The `tcp_request` kind: one blocking request over TCP, the stand-in for I/O-bound work
//! that waits on a real socket (the `sleep` kind waits on nothing).
//!
//! # Wire protocol
//!
//! | direction | bytes | meaning |
//! |---|---|---|
//! | client → server | 8, little-endian `u64` | the request id |
//! | server → client | 8, little-endian `u64` | the same id, once the server is done |
//!
//! The task connects (one connection per task, as a client of a remote service without a
//! connection pool would), sends its id, reads the answer, checks that it echoes the id and
//! closes. Every step is bounded by the input's `timeout_ms`, so a silent or dead server ends
//! the task with an error, never a hang. The lab's latency server (`mpmt-lab`,
//! `bench::io_server`) speaks this protocol and answers after a fixed delay.
//!
//! The output is `Ok(id)` or `Err(what failed)`: a refused connection or a timeout is the
//! task's result, not a panic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Task;

/// Length of a request and of its answer, bytes.
pub const MESSAGE_LEN: usize = 8;

/// Input of [`TcpRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRequestInput {
    /// The server.
    pub addr: SocketAddr,
    /// The request id the server must echo.
    pub id: u64,
    /// Bound of each step (connect, send, receive), milliseconds.
    pub timeout_ms: u64,
}

/// Makes one blocking request (module docs): returns the echoed id, or what failed.
#[derive(Debug)]
pub struct TcpRequest;

impl Task for TcpRequest {
    const NAME: &'static str = "tcp_request";
    type Input = TcpRequestInput;
    type Output = Result<u64, String>;
    fn run(input: TcpRequestInput) -> Result<u64, String> {
        request(input).map_err(|e| format!("request {} to {}: {e}", input.id, input.addr))
    }
}

fn request(input: TcpRequestInput) -> std::io::Result<u64> {
    let timeout = Duration::from_millis(input.timeout_ms.max(1));
    let mut stream = TcpStream::connect_timeout(&input.addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&input.id.to_le_bytes())?;
    let mut answer = [0u8; MESSAGE_LEN];
    stream.read_exact(&mut answer)?;
    let echoed = u64::from_le_bytes(answer);
    if echoed == input.id {
        Ok(echoed)
    } else {
        Err(std::io::Error::other(format!("the server answered {echoed}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn input(addr: SocketAddr, id: u64) -> TcpRequestInput {
        TcpRequestInput { addr, id, timeout_ms: 2000 }
    }

    #[test]
    fn a_request_is_answered_by_its_echo() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut id = [0u8; MESSAGE_LEN];
            s.read_exact(&mut id).unwrap();
            s.write_all(&id).unwrap();
            // A second connection gets a wrong answer.
            let (mut s, _) = listener.accept().unwrap();
            s.read_exact(&mut id).unwrap();
            s.write_all(&7u64.to_le_bytes()).unwrap();
        });
        assert_eq!(TcpRequest::run(input(addr, 42)), Ok(42));
        let wrong = TcpRequest::run(input(addr, 43)).unwrap_err();
        assert!(wrong.contains("answered 7"), "{wrong}");
        server.join().unwrap();
    }

    #[test]
    fn a_closed_port_or_a_silent_server_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted (by the backlog) but never answered: the read times out.
        let silent = TcpRequest::run(TcpRequestInput { addr, id: 1, timeout_ms: 50 });
        assert!(silent.is_err());
        drop(listener);
        assert!(TcpRequest::run(input(addr, 1)).is_err());
    }
}
