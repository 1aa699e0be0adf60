//! Message sizes as people write them (`--sizes 64,4KiB,1MiB`) and as reports print them.
//!
//! Parsing goes through [`crate::measure::units::parse_bytes`] (binary `KiB`/`MiB`, decimal
//! `KB`/`MB`), then bounds the result to 1..=[`MAX_SIZE`].

use std::str::FromStr;

use super::{IpcError, MAX_SIZE};

/// A list of message sizes, as given to `--sizes`: comma-separated byte counts, each with an
/// optional unit (`B`; `KiB`, `MiB`: powers of 1024; `KB`, `MB`: powers of 1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeList(pub Vec<usize>);

impl FromStr for SizeList {
    type Err = IpcError;

    fn from_str(s: &str) -> Result<SizeList, IpcError> {
        let sizes = s.split(',').map(parse_size).collect::<Result<Vec<_>, _>>()?;
        Ok(SizeList(sizes))
    }
}

/// Parses one message size (see [`SizeList`]).
pub fn parse_size(text: &str) -> Result<usize, IpcError> {
    let bad = |why: String| IpcError::BadSize { text: text.to_owned(), why };
    let bytes = crate::measure::units::parse_bytes(text).map_err(bad)?;
    let bytes = usize::try_from(bytes).map_err(|_| bad("the number is too large".into()))?;
    if bytes > MAX_SIZE {
        return Err(bad("at most 16 MiB".into()));
    }
    Ok(bytes)
}

/// A message size for people: exact, with the largest binary unit that divides it (`64 B`,
/// `4 KiB`, `1 MiB`, `1000 B`).
pub fn format_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ipc::DEFAULT_SIZES;

    #[test]
    fn size_lists_parse_with_units() {
        assert_eq!(
            "64,4096,65536,1048576".parse::<SizeList>().unwrap(),
            SizeList(DEFAULT_SIZES.to_vec())
        );
        assert_eq!("64, 4KiB,1MiB,2KB".parse::<SizeList>().unwrap().0, [64, 4096, 1 << 20, 2000]);
        assert_eq!(parse_size("16MiB").unwrap(), MAX_SIZE);
        assert_eq!(parse_size("1b").unwrap(), 1);
    }

    #[test]
    fn sizes_format_exactly() {
        let text: Vec<String> = [64, 4096, 65536, 1 << 20, 1000, 3 << 19].map(format_size).into();
        assert_eq!(text, ["64 B", "4 KiB", "64 KiB", "1 MiB", "1000 B", "1536 KiB"]);
    }

    #[test]
    fn bad_sizes_are_refused_with_the_reason() {
        for (text, why) in [
            ("0", "from 1 up"),
            ("", "not a size"),
            ("64,", "not a size"),
            ("-5", "not a size"),
            ("4 parsecs", "unknown size unit"),
            ("17MiB", "at most 16 MiB"),
            ("99999999999999999999", "from 1 up"),
            ("18446744073709551615MiB", "from 1 up"),
        ] {
            let err = text.parse::<SizeList>().unwrap_err();
            assert!(matches!(err, IpcError::BadSize { .. }), "{text}");
            let message = err.to_string();
            assert!(
                message.contains("bad message size") && message.contains(why),
                "{text}: {message}"
            );
        }
    }
}
