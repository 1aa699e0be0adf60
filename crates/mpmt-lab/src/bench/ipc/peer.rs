//! The peer process of the IPC benchmark: `mpmt __ipc-peer echo|spin ...`.
//!
//! The benchmark measures what the process pool uses, so its peer is the `mpmt` binary
//! re-executed like a pool worker: spawned through [`mpmt::supervise`] with exactly the
//! descriptors and environment its transport's [`mpmt::transport::Pending`] asks for, and
//! connected with [`mpmt::transport::connect`]. [`mpmt::worker::run_if_worker`] hands the
//! hidden first argument [`PEER_COMMAND`] here.
//!
//! # Modes
//!
//! * `echo --link ARG`: a frame loop over the transport (framing and checksums included).
//!   The peer first sends one `Hello` frame (so the parent knows it runs), then answers
//!   `Data` frames by their id, which serves as the opcode:
//!   * [`ECHO`]: the same payload is sent straight back (a round trip);
//!   * [`COUNT`]: the frame is counted (messages and payload bytes), nothing is answered;
//!   * [`END`]: the peer answers one [`ACK`] frame whose 16-byte payload holds the counts
//!     since the previous `END` (two little-endian `u64`: messages, bytes), so the parent
//!     can verify that every streamed message arrived.
//!
//!   `Shutdown` or the end of the stream ends the peer with exit code 0; any other frame is
//!   a protocol error ([`ChildCode::Protocol`]).
//! * `spin --fd N`: maps the inherited memfd page of `spin.rs` and plays the ponger
//!   until the parent writes the stop value; exit code [`ChildCode::Silent`] if the parent went
//!   silent.
//!
//! Common options: `--parent PID` (required: like a pool worker, the peer arms
//! `PR_SET_PDEATHSIG` and exits at once if its parent is already someone else, so it never
//! outlives the benchmark) and `--pin CPU` (pin the peer's thread to that CPU).

use std::ffi::OsString;
use std::time::Duration;

use super::spin::{SpinPage, pong};
use crate::measure::cpu::pin_current_thread;
use mpmt::supervise::ChildCode;
use mpmt::supervise::child::{self, Flags, StartError};
use mpmt::transport::frame::{
    DEFAULT_MAX_PAYLOAD, FrameError, FrameKind, FrameReader, FrameWriter,
};
use mpmt::transport::{self, ByteRx, ByteTx, Link};

/// The hidden first argument that turns the binary into an IPC benchmark peer.
pub const PEER_COMMAND: &str = "__ipc-peer";

/// Frame id of a message to echo.
pub const ECHO: u64 = 1;
/// Frame id of a streamed message to count.
pub const COUNT: u64 = 2;
/// Frame id that ends a stream: answer with [`ACK`].
pub const END: u64 = 3;
/// Frame id of the peer's answer to [`END`]: messages and bytes counted.
pub const ACK: u64 = 4;

/// How long a spin peer waits for a parent that stopped writing.
pub(crate) const SPIN_SILENCE: Duration = Duration::from_secs(5);

/// What the peer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Frame echo/count loop over the channel described by the argument.
    Echo {
        /// The channel argument for [`transport::connect`].
        link: String,
    },
    /// Spin ponger on the inherited memfd page with this descriptor number.
    Spin {
        /// The descriptor, as written on the command line.
        fd: String,
    },
}

/// The peer's command line (after [`PEER_COMMAND`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerArgs {
    pub(crate) mode: Mode,
    /// The benchmark's pid.
    pub(crate) parent: u32,
    /// CPU to pin the peer to.
    pub(crate) pin: Option<usize>,
}

impl PeerArgs {
    /// The arguments after [`PEER_COMMAND`].
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = match &self.mode {
            Mode::Echo { link } => vec!["echo".into(), "--link".into(), link.clone()],
            Mode::Spin { fd } => vec!["spin".into(), "--fd".into(), fd.clone()],
        };
        args.extend(["--parent".into(), self.parent.to_string()]);
        if let Some(cpu) = self.pin {
            args.extend(["--pin".into(), cpu.to_string()]);
        }
        args
    }

    pub(crate) fn parse(mut args: impl Iterator<Item = OsString>) -> Result<PeerArgs, String> {
        let mode = args.next().and_then(|m| m.into_string().ok()).unwrap_or_default();
        let flags = Flags::parse(args, &["--link", "--fd", "--parent", "--pin"])?;
        let mode = match mode.as_str() {
            "echo" => Mode::Echo { link: flags.get("--link").ok_or("echo needs --link")?.into() },
            "spin" => Mode::Spin { fd: flags.get("--fd").ok_or("spin needs --fd")?.into() },
            other => return Err(format!("unknown peer mode '{other}' (echo, spin)")),
        };
        Ok(PeerArgs {
            mode,
            parent: flags.num("--parent")?.ok_or("--parent is required")?,
            pin: flags.num("--pin")?,
        })
    }
}

/// Runs the peer with the arguments after [`PEER_COMMAND`]; returns its exit code.
pub(crate) fn main(args: impl Iterator<Item = OsString>) -> i32 {
    let args = match PeerArgs::parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("mpmt ipc peer: {message}");
            return ChildCode::Setup.code();
        }
    };
    // As a pool worker does: never outlive the benchmark.
    match child::start(args.parent) {
        Ok(()) => {}
        Err(StartError::Orphaned) => return ChildCode::Setup.code(),
        Err(e) => {
            eprintln!("mpmt ipc peer: {e}");
            return ChildCode::Setup.code();
        }
    }
    // Held until the process ends.
    let _pinned = match args.pin.map(pin_current_thread) {
        Some(Err(e)) => {
            eprintln!("mpmt ipc peer: {e}");
            return ChildCode::Setup.code();
        }
        other => other,
    };
    match args.mode {
        Mode::Echo { link } => match transport::connect(&link) {
            Ok(link) => echo_code(serve(link)),
            Err(e) => {
                eprintln!("mpmt ipc peer: {e}");
                ChildCode::Setup.code()
            }
        },
        Mode::Spin { fd } => {
            let page = match transport::inherit::take_fds::<1>(&fd)
                .map_err(|e| e.to_string())
                .and_then(|[fd]| SpinPage::open(&fd).map_err(|e| e.to_string()))
            {
                Ok(page) => page,
                Err(e) => {
                    eprintln!("mpmt ipc peer: spin page: {e}");
                    return ChildCode::Setup.code();
                }
            };
            if pong(page.word(), SPIN_SILENCE) { 0 } else { ChildCode::Silent.code() }
        }
    }
}

fn echo_code(result: Result<(), FrameError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mpmt ipc peer: {e}");
            ChildCode::Protocol.code()
        }
    }
}

/// The echo/count loop (module docs) over an open channel; `Ok` at `Shutdown` or end of
/// stream. Runs in the peer process, and on a thread in the unit tests.
pub(crate) fn serve(link: Link) -> Result<(), FrameError> {
    let mut writer = FrameWriter::new(link.tx, DEFAULT_MAX_PAYLOAD);
    let mut reader = FrameReader::new(link.rx, DEFAULT_MAX_PAYLOAD);
    writer.push(FrameKind::Hello, 0, &[])?;
    writer.flush()?;
    serve_frames(&mut reader, &mut writer)
}

fn serve_frames<R: ByteRx, W: ByteTx>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<(), FrameError> {
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let (header, payload) = match reader.read_frame() {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        match (header.kind, header.id) {
            (FrameKind::Data, ECHO) => {
                writer.push(FrameKind::Data, ECHO, payload)?;
                writer.flush()?;
            }
            (FrameKind::Data, COUNT) => {
                messages += 1;
                bytes += payload.len() as u64;
            }
            (FrameKind::Data, END) => {
                let mut ack = [0u8; 16];
                ack[..8].copy_from_slice(&messages.to_le_bytes());
                ack[8..].copy_from_slice(&bytes.to_le_bytes());
                writer.push(FrameKind::Data, ACK, &ack)?;
                writer.flush()?;
                (messages, bytes) = (0, 0);
            }
            (FrameKind::Shutdown, _) => return Ok(()),
            (kind, id) => {
                return Err(FrameError::Io(std::io::Error::other(format!(
                    "unexpected {kind:?} frame with id {id}"
                ))));
            }
        }
    }
}

/// Decodes an [`ACK`] payload into (messages, bytes).
pub(crate) fn decode_ack(payload: &[u8]) -> Option<(u64, u64)> {
    let messages = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let bytes = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    (payload.len() == 16).then_some((messages, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> impl Iterator<Item = OsString> {
        args.iter().map(OsString::from).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn arguments_round_trip() {
        for mode in [Mode::Echo { link: "pipe:5,6".into() }, Mode::Spin { fd: "7".into() }] {
            let args = PeerArgs { mode, parent: 42, pin: Some(1) };
            let text = args.to_args();
            let strs: Vec<&str> = text.iter().map(String::as_str).collect();
            assert_eq!(PeerArgs::parse(os(&strs)).unwrap(), args);
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(PeerArgs::parse(os(&["fly", "--parent", "1"])).is_err());
        assert!(PeerArgs::parse(os(&["echo", "--parent", "1"])).is_err());
        assert!(PeerArgs::parse(os(&["echo", "--link", "pipe:5,6"])).is_err());
        assert!(PeerArgs::parse(os(&["spin", "--fd", "7", "--parent", "x"])).is_err());
        assert!(
            PeerArgs::parse(os(&["spin", "--fd", "7", "--parent", "1", "--bogus", "1"])).is_err()
        );
    }

    #[test]
    fn ack_codec() {
        let mut ack = [0u8; 16];
        ack[..8].copy_from_slice(&5u64.to_le_bytes());
        ack[8..].copy_from_slice(&320u64.to_le_bytes());
        assert_eq!(decode_ack(&ack), Some((5, 320)));
        assert_eq!(decode_ack(&ack[..15]), None);
        assert_eq!(decode_ack(&[0; 17]), None);
    }
}
