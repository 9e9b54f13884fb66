//! Elasticsearch byte sizes (`10mb`, `1gb`, `512kb`, `100b`, a bare number
//! of bytes), as repository settings (`max_snapshot_bytes_per_sec`,
//! `chunk_size`) and repository analysis (`max_blob_size`) carry them.

/// Parses `10mb`, `1gb`, `512kb`, `100b` or a bare number of bytes;
/// `None` when malformed or negative, and for a fraction of a byte
/// (`1.5`, `0.5b`), which Elasticsearch refuses too.
pub fn parse_byte_size(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" if num.contains('.') => return None,
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        "p" | "pb" => 1 << 50,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_byte_size("10mb"), Some(10 << 20));
        assert_eq!(parse_byte_size("1GB"), Some(1 << 30));
        assert_eq!(parse_byte_size("512"), Some(512));
        assert_eq!(parse_byte_size("1.5kb"), Some(1536));
        assert_eq!(parse_byte_size("ten"), None);
        assert_eq!(parse_byte_size("5xb"), None);
        // Found by the nasty-input tests: `max_blob_size=1.5` analysed
        // with 1-byte blobs.
        assert_eq!(parse_byte_size("1.5"), None);
        assert_eq!(parse_byte_size("0.5b"), None);
        assert_eq!(parse_byte_size("1e400"), None);
        assert_eq!(parse_byte_size("99999999999pb"), Some(u64::MAX));
    }
}
