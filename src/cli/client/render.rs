//! Human output: aligned tables, readable durations, and `--json`'s
//! pretty-printed server answers. Pure functions, so the layout is
//! unit-tested here and the commands only choose what goes in.

use serde_json::Value;

/// Columns separated by two spaces, each as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// `850ms`, `12.4s`, `3m 05s`, `2h 07m`.
pub fn millis(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A JSON string field, or `-` when absent.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints the server's answer for `--json`.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell_without_trailing_blanks() {
        let t = table(
            &["name", "state", "indices"],
            &[
                vec!["nightly-2026.12.01".into(), "SUCCESS".into(), "3".into()],
                vec!["a".into(), "FAILED".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "name                state    indices\nnightly-2026.12.01  SUCCESS  3\na                   FAILED"
        );
    }

    #[test]
    fn durations_read_at_the_scale_they_have() {
        assert_eq!(millis(850), "850ms");
        assert_eq!(millis(12_400), "12.4s");
        assert_eq!(millis(185_000), "3m 05s");
        assert_eq!(millis(7_620_000), "2h 07m");
        assert_eq!(millis(-5), "0ms");
    }
}
