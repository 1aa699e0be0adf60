//! Tasks: named kinds of work with a serde input and output.
//!
//! A task kind is a type implementing [`Task`]: a registered [`Task::NAME`], an input and an
//! output type, and a function. The same kind runs on every model:
//!
//! * the thread model calls [`Task::run`] directly on the typed input (no serialisation);
//! * the process model encodes the input with postcard, ships it to a worker process inside a
//!   frame (see [`crate::transport::frame`]), and the worker looks the kind up **by name** in
//!   its [`Registry`], decodes, runs, and encodes the output back.
//!
//! Kinds cross process boundaries as names, never as function pointers: the worker is the same
//! binary re-executed, but a name plus a registry lookup stays correct even when it is not
//! (and an unknown name is a typed error, [`crate::TaskError::UnknownKind`], not undefined
//! behaviour).
//!
//! Internally the pool handles tasks type-erased, as a [`Job`]: a `&'static` [`Kind`] (a small
//! table of monomorphised functions for one `Task` type) and a boxed input.

pub mod builtin;
pub mod fault;
pub mod mmchurn;
pub mod tcp;
pub mod unwind;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::transport::frame::{FrameBuf, Sink};

/// A boxed value of a task's input or output type, as the pool carries it type-erased.
pub type AnyValue = Box<dyn Any + Send>;

/// A kind of task: a name, typed input and output, and the function that maps one to the other.
///
/// ```
/// use mpmt::task::Task;
///
/// /// Counts the words of a string.
/// struct WordCount;
///
/// impl Task for WordCount {
///     const NAME: &'static str = "word-count";
///     type Input = String;
///     type Output = usize;
///     fn run(input: String) -> usize {
///         input.split_whitespace().count()
///     }
/// }
/// assert_eq!(WordCount::run("a b c".into()), 3);
/// ```
pub trait Task: 'static {
    /// The name under which workers find this kind. Unique within a [`Registry`].
    const NAME: &'static str;
    /// What a caller hands to the task.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// What the task returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Whether running the task twice is harmless. The pool retries an idempotent task whose
    /// worker died under it, when [`crate::pool::PoolBuilder::retries`] allows; others fail.
    const IDEMPOTENT: bool = false;
    /// Runs the task. A panic here becomes [`crate::TaskError::Panicked`].
    fn run(input: Self::Input) -> Self::Output;
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} of task kind '{kind}': {message}")]
pub struct CodecError {
    /// The kind whose payload failed.
    pub kind: String,
    /// Which payload: "input" or "output".
    pub what: &'static str,
    /// The codec's own message.
    pub message: String,
}

/// The type-erased table of functions for one [`Task`] type.
///
/// Obtained with [`Kind::of`]; always `'static`, so a [`Job`] carries a plain reference.
pub struct Kind {
    name: &'static str,
    run_local: fn(AnyValue) -> Result<AnyValue, CodecError>,
    encode_input: fn(&(dyn Any + Send), &mut Vec<u8>) -> Result<(), CodecError>,
    encode_input_to: fn(&(dyn Any + Send), &mut FrameBuf<'_>) -> Result<(), CodecError>,
    run_encoded: fn(&[u8], &mut Vec<u8>) -> Result<(), CodecError>,
    decode_output: fn(&[u8]) -> Result<AnyValue, CodecError>,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kind").field("name", &self.name).finish()
    }
}

/// Holds the `Kind` constant of one task type, so `&KindOf::<T>::KIND` is promoted to `'static`.
struct KindOf<T>(std::marker::PhantomData<T>);

impl<T: Task> KindOf<T> {
    const KIND: Kind = Kind {
        name: T::NAME,
        run_local: run_local::<T>,
        encode_input: encode_input::<T>,
        encode_input_to: encode_input_to::<T>,
        run_encoded: run_encoded::<T>,
        decode_output: decode_output::<T>,
    };
}

/// Appends postcard output to a [`Sink`], through [`encode_into`]: a `Vec` (the worker encodes
/// its `Hello` and panic reports with it too) or a frame's payload in place in the shm ring
/// ([`FrameBuf`]).
///
/// A postcard flavor rather than `to_extend`'s `Extend<u8>`: postcard hands over a value's
/// bytes a few at a time (a varint, a length), and `Vec::extend` turns each into a call to
/// `memcpy`, which costs more than a task of a chunk; short pieces are pushed byte by byte.
pub(crate) struct Append<'a, S: Sink + ?Sized>(pub(crate) &'a mut S);

impl<S: Sink + ?Sized> postcard::ser_flavors::Flavor for Append<'_, S> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 16 {
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the postcard encoding of `value` to `out` (a `Vec`, or a frame's payload as it
/// is serialised).
pub(crate) fn encode_into<T: Serialize + ?Sized, S: Sink + ?Sized>(
    value: &T,
    out: &mut S,
) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, Append(out))
}

fn codec_error<T: Task>(what: &'static str, e: impl fmt::Display) -> CodecError {
    CodecError { kind: T::NAME.to_owned(), what, message: e.to_string() }
}

fn run_local<T: Task>(input: AnyValue) -> Result<AnyValue, CodecError> {
    let input = input
        .downcast::<T::Input>()
        .map_err(|_| codec_error::<T>("input", "value is not this kind's input type"))?;
    Ok(Box::new(T::run(*input)))
}

fn encode_input<T: Task>(input: &(dyn Any + Send), out: &mut Vec<u8>) -> Result<(), CodecError> {
    encode_typed_input::<T, _>(input, out)
}

fn encode_input_to<T: Task>(
    input: &(dyn Any + Send),
    out: &mut FrameBuf<'_>,
) -> Result<(), CodecError> {
    encode_typed_input::<T, _>(input, out)
}

/// The body of both input encoders: the `Kind` table holds one function pointer per sink
/// (a pointer to a generic function cannot stay generic over `FrameBuf`'s lifetime).
fn encode_typed_input<T: Task, S: Sink + ?Sized>(
    input: &(dyn Any + Send),
    out: &mut S,
) -> Result<(), CodecError> {
    let input = input
        .downcast_ref::<T::Input>()
        .ok_or_else(|| codec_error::<T>("input", "value is not this kind's input type"))?;
    encode_into(input, out).map_err(|e| codec_error::<T>("input", e))
}

fn run_encoded<T: Task>(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let input: T::Input = postcard::from_bytes(input).map_err(|e| codec_error::<T>("input", e))?;
    let output = T::run(input);
    encode_into(&output, out).map_err(|e| codec_error::<T>("output", e))?;
    Ok(())
}

fn decode_output<T: Task>(bytes: &[u8]) -> Result<AnyValue, CodecError> {
    let output: T::Output =
        postcard::from_bytes(bytes).map_err(|e| codec_error::<T>("output", e))?;
    Ok(Box::new(output))
}

impl Kind {
    /// The kind table of task type `T`.
    pub fn of<T: Task>() -> &'static Kind {
        &KindOf::<T>::KIND
    }

    /// The registered name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs a type-erased input in this thread (thread model). Panics propagate to the caller.
    pub(crate) fn run_local(&self, input: AnyValue) -> Result<AnyValue, CodecError> {
        (self.run_local)(input)
    }

    /// Appends the postcard encoding of `input` to `out` (process model, parent side).
    pub(crate) fn encode_input(
        &self,
        input: &(dyn Any + Send),
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        (self.encode_input)(input, out)
    }

    /// [`Kind::encode_input`] into a frame's payload as it is serialised (in place in the
    /// shm ring where it fits).
    pub(crate) fn encode_input_to(
        &self,
        input: &(dyn Any + Send),
        out: &mut FrameBuf<'_>,
    ) -> Result<(), CodecError> {
        (self.encode_input_to)(input, out)
    }

    /// Decodes an input, runs the task, appends the encoded output (worker side).
    /// Panics propagate to the caller.
    pub(crate) fn run_encoded(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        (self.run_encoded)(input, out)
    }

    /// Decodes an output (process model, parent side).
    pub(crate) fn decode_output(&self, bytes: &[u8]) -> Result<AnyValue, CodecError> {
        (self.decode_output)(bytes)
    }

    /// A twin of this kind, under the same name, whose input and output stay encoded: its
    /// input is the postcard bytes of this kind's input (a `Vec<u8>`), its decoded output the
    /// postcard bytes of this kind's output. A relay that never sees the types (a cluster
    /// node, which receives tasks already encoded and sends outcomes on encoded) runs jobs of
    /// it on its own process pool; the worker still runs this kind, found by name.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn encoded_twin(&self) -> Kind {
        Kind {
            name: self.name,
            run_local: run_local_encoded,
            encode_input: encode_input_encoded,
            encode_input_to: encode_input_to_encoded,
            run_encoded: self.run_encoded,
            decode_output: decode_output_encoded,
        }
    }
}

fn encoded_error(what: &'static str, message: &str) -> CodecError {
    CodecError { kind: "(encoded)".to_owned(), what, message: message.to_owned() }
}

/// An encoded twin cannot run in this thread: it has no typed input (thread model).
fn run_local_encoded(_: AnyValue) -> Result<AnyValue, CodecError> {
    Err(encoded_error("input", "an encoded job runs only in a worker process"))
}

fn encode_input_encoded(input: &(dyn Any + Send), out: &mut Vec<u8>) -> Result<(), CodecError> {
    append_encoded_input(input, out)
}

fn encode_input_to_encoded(
    input: &(dyn Any + Send),
    out: &mut FrameBuf<'_>,
) -> Result<(), CodecError> {
    append_encoded_input(input, out)
}

/// The body of both encoded twins' input encoders: the input is already its bytes.
fn append_encoded_input<S: Sink + ?Sized>(
    input: &(dyn Any + Send),
    out: &mut S,
) -> Result<(), CodecError> {
    let bytes = input
        .downcast_ref::<Vec<u8>>()
        .ok_or_else(|| encoded_error("input", "an encoded job's input is its bytes"))?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn decode_output_encoded(bytes: &[u8]) -> Result<AnyValue, CodecError> {
    Ok(Box::new(bytes.to_vec()))
}

/// One task invocation, type-erased: a kind and its boxed input.
///
/// Built with [`Job::new`]; lets one pool run several kinds side by side (the CLI mixes fault
/// kinds into a workload this way).
pub struct Job {
    kind: &'static Kind,
    input: AnyValue,
    idempotent: bool,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").field("kind", &self.kind.name).finish_non_exhaustive()
    }
}

impl Job {
    /// A job of kind `T` with the given input.
    pub fn new<T: Task>(input: T::Input) -> Job {
        Job { kind: Kind::of::<T>(), input: Box::new(input), idempotent: T::IDEMPOTENT }
    }

    /// Overrides the kind's [`Task::IDEMPOTENT`] for this job.
    pub fn idempotent(mut self, idempotent: bool) -> Job {
        self.idempotent = idempotent;
        self
    }

    /// Whether the pool may run this job again after its worker died.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The kind table.
    pub fn kind(&self) -> &'static Kind {
        self.kind
    }

    /// The boxed input.
    pub(crate) fn input(&self) -> &(dyn Any + Send) {
        &*self.input
    }

    /// A job of an [encoded twin](Kind::encoded_twin) kind: `input` is already encoded.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn encoded(kind: &'static Kind, input: Vec<u8>, idempotent: bool) -> Job {
        Job { kind, input: Box::new(input), idempotent }
    }

    /// Splits the job into kind and input.
    pub(crate) fn into_parts(self) -> (&'static Kind, AnyValue) {
        (self.kind, self.input)
    }
}

/// The task kinds a worker process knows, by name.
///
/// [`Registry::builtin`] holds the kinds of [`builtin`]; library users add their own with
/// [`Registry::register`] and hand the registry to [`crate::worker::run_if_worker`].
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: HashMap<&'static str, &'static Kind>,
}

/// Two different kinds were registered under one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task kind name '{0}' is registered twice")]
pub struct DuplicateKind(pub &'static str);

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry with every built-in kind ([`builtin::register_all`]).
    pub fn builtin() -> Registry {
        let mut registry = Registry::new();
        builtin::register_all(&mut registry).expect("built-in kind names are distinct");
        registry
    }

    /// Adds kind `T`. Registering the same type twice is harmless; another type under the same
    /// name is an error.
    pub fn register<T: Task>(&mut self) -> Result<&mut Registry, DuplicateKind> {
        let kind = Kind::of::<T>();
        match self.kinds.get(T::NAME) {
            Some(existing) if !std::ptr::eq(*existing, kind) && !same_fns(existing, kind) => {
                Err(DuplicateKind(T::NAME))
            }
            _ => {
                self.kinds.insert(T::NAME, kind);
                Ok(self)
            }
        }
    }

    /// Looks a kind up by name.
    pub fn get(&self, name: &str) -> Option<&'static Kind> {
        self.kinds.get(name).copied()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.kinds.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

/// Constants may be instantiated more than once across codegen units, so two `&'static Kind`
/// of one type can differ by address; compare their functions instead.
fn same_fns(a: &Kind, b: &Kind) -> bool {
    std::ptr::fn_addr_eq(a.run_encoded, b.run_encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Double;
    impl Task for Double {
        const NAME: &'static str = "double";
        type Input = u64;
        type Output = u64;
        fn run(x: u64) -> u64 {
            x * 2
        }
    }

    struct OtherDouble;
    impl Task for OtherDouble {
        const NAME: &'static str = "double";
        type Input = u32;
        type Output = u32;
        fn run(x: u32) -> u32 {
            x
        }
    }

    #[test]
    fn encoded_round_trip_matches_local_run() {
        let kind = Kind::of::<Double>();
        let mut wire = Vec::new();
        kind.encode_input(&21u64, &mut wire).unwrap();
        let mut out = Vec::new();
        kind.run_encoded(&wire, &mut out).unwrap();
        let decoded = kind.decode_output(&out).unwrap();
        assert_eq!(*decoded.downcast::<u64>().unwrap(), 42);
        let local = kind.run_local(Box::new(21u64)).unwrap();
        assert_eq!(*local.downcast::<u64>().unwrap(), 42);
    }

    #[test]
    fn encoded_twin_relays_bytes_the_kind_runs() {
        let kind = Kind::of::<Double>();
        let twin = kind.encoded_twin();
        assert_eq!(twin.name(), kind.name());
        let mut wire = Vec::new();
        kind.encode_input(&21u64, &mut wire).unwrap();
        let mut relayed = Vec::new();
        twin.encode_input(&wire, &mut relayed).unwrap();
        assert_eq!(relayed, wire);
        let mut out = Vec::new();
        twin.run_encoded(&relayed, &mut out).unwrap();
        let bytes = *twin.decode_output(&out).unwrap().downcast::<Vec<u8>>().unwrap();
        assert_eq!(*kind.decode_output(&bytes).unwrap().downcast::<u64>().unwrap(), 42);
        assert!(twin.encode_input(&21u64, &mut Vec::new()).is_err());
        assert!(twin.run_local(Box::new(wire)).is_err());
    }

    #[test]
    fn wrong_input_type_is_a_codec_error() {
        let kind = Kind::of::<Double>();
        assert!(kind.run_local(Box::new("no")).is_err());
        assert!(kind.encode_input(&"no", &mut Vec::new()).is_err());
        assert!(kind.run_encoded(&[0xff; 12], &mut Vec::new()).is_err());
    }

    #[test]
    fn registry_rejects_a_second_type_under_one_name() {
        let mut r = Registry::new();
        r.register::<Double>().unwrap();
        r.register::<Double>().unwrap();
        assert_eq!(r.register::<OtherDouble>().unwrap_err(), DuplicateKind("double"));
        assert!(r.get("double").is_some());
        assert!(r.get("triple").is_none());
    }
}
