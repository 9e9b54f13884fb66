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

/// Iterates the entries of a segment with their byte ranges, in one pass
/// of the parser (no separate search for line ends). A range runs from the
/// end of the entry before it (blank lines included) through this entry's
/// newline, so reading it back parses to the same entry.
pub fn entries(
    data: &[u8],
) -> impl Iterator<Item = Result<(u64, u64, Entry<'_>), serde_json::Error>> {
    let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<Entry>();
    let mut start = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let next = stream.next()?;
        let mut end = stream.byte_offset();
        if data.get(end) == Some(&b'\n') {
            end += 1;
        }
        let range = (start as u64, (end - start) as u64);
        start = end;
        failed = next.is_err();
        Some(next.map(|e| (range.0, range.1, e)))
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
        buf.extend_from_slice(b"\n");
        append(&mut buf, "3", 1, 2, Some(b"[]"));
        let all: Vec<_> = entries(&buf).map(|r| r.unwrap()).collect();
        assert_eq!(all.len(), 3);
        // Every range parses back to its entry, a blank line before it or not.
        for (offset, len, e) in &all {
            let line = &buf[*offset as usize..(*offset + *len) as usize];
            let back: Entry = serde_json::from_slice(line).unwrap();
            assert_eq!((back.id, back.seq_no), (e.id.clone(), e.seq_no));
        }
        assert_eq!(all.iter().map(|(_, l, _)| l).sum::<u64>(), buf.len() as u64);
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
