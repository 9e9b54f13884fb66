//! Segment files: immutable NDJSON logs of document operations. A write
//! batch becomes one new segment per shard; a later segment overrides an
//! earlier one for the same id. Immutability is what makes snapshots
//! incremental: a segment already in a repository is never read again.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Largest segment a single write produces; bigger batches are split, so a
/// snapshot never has to hold more than this of one file in memory.
pub const MAX_SEGMENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct Entry<'a> {
    pub id: std::borrow::Cow<'a, str>,
    pub version: u64,
    pub seq_no: u64,
    /// The document, or `None` for a deletion.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a RawValue>,
}

pub fn segment_name(n: u64) -> String {
    format!("seg-{n:012}.ndjson")
}

pub fn parse_segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".ndjson")?
        .parse()
        .ok()
}

/// Appends one entry line to a segment buffer; returns the line's range.
/// The line is what serialising an [`Entry`] gives, written directly so
/// that the source, already checked, is copied once and parsed never.
pub fn append(
    buf: &mut Vec<u8>,
    id: &str,
    version: u64,
    seq_no: u64,
    source: Option<&[u8]>,
) -> (u64, u64) {
    use std::io::Write;
    let start = buf.len() as u64;
    buf.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut *buf, id).expect("a string serialises into memory");
    write!(buf, ",\"version\":{version},\"seq_no\":{seq_no}").expect("memory");
    if let Some(source) = source {
        buf.extend_from_slice(b",\"source\":");
        buf.extend_from_slice(source);
    }
    buf.extend_from_slice(b"}\n");
    (start, buf.len() as u64 - start)
}

/// Iterates the entries of a segment with their byte ranges.
pub fn entries(
    data: &[u8],
) -> impl Iterator<Item = Result<(u64, u64, Entry<'_>), serde_json::Error>> {
    let mut offset = 0u64;
    data.split_inclusive(|b| *b == b'\n')
        .filter(|l| l.len() > 1)
        .map(move |line| {
            let start = offset;
            offset += line.len() as u64;
            serde_json::from_slice::<Entry>(line).map(|e| (start, line.len() as u64, e))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_lines_round_trip() {
        let mut buf = Vec::new();
        append(&mut buf, "1", 1, 0, Some(br#"{"a":1}"#));
        append(&mut buf, "2\"\n", 3, 1, None);
        let all: Vec<_> = entries(&buf).map(|r| r.unwrap()).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].2.source.unwrap().get(), r#"{"a":1}"#);
        assert_eq!(all[1].2.id, "2\"\n");
        assert!(all[1].2.source.is_none());
        assert_eq!(parse_segment_number(&segment_name(7)), Some(7));
    }

    #[test]
    fn appended_lines_are_what_serde_writes_for_an_entry() {
        let src: Box<RawValue> = serde_json::from_str(r#"{"a":[1,"\u00e9"]}"#).unwrap();
        for (id, source) in [("x\u{1}é", Some(src.as_ref())), ("del", None)] {
            let mut buf = Vec::new();
            append(&mut buf, id, 7, 42, source.map(|s| s.get().as_bytes()));
            let entry = Entry {
                id: id.into(),
                version: 7,
                seq_no: 42,
                source,
            };
            let mut want = serde_json::to_vec(&entry).unwrap();
            want.push(b'\n');
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }
}
