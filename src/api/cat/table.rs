//! How a `_cat` table is selected, sorted and drawn: `h` picks columns
//! (names or Elasticsearch's aliases; without it, the default columns),
//! `s` orders rows (numbers, sizes and durations by their value, not by
//! their text), `v` adds a header, `help` lists the columns, `bytes` and
//! `time` choose the unit of size and duration cells, `format=json` gives
//! objects. The work stays bounded by rows × columns whatever the query
//! repeats. This module draws what it is given; it gathers no data.

use std::cmp::Ordering;

use axum::body::Body;
use axum::response::{IntoResponse, Response};

use super::super::error::ApiError;
use super::super::extract::flag;
use super::CatQuery;

/// One column as Elasticsearch's `Table` header declares it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub desc: &'static str,
    /// Shown without `h` (Elasticsearch's `default:false` columns are not).
    pub default: bool,
    /// `text-align:right`.
    pub right: bool,
}

impl Column {
    /// A column shown by default, left-aligned, without aliases.
    pub const fn plain(name: &'static str) -> Column {
        Column {
            name,
            aliases: &[],
            desc: "",
            default: true,
            right: false,
        }
    }

    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// One cell: its text, and the value it sorts by when it is a number, a
/// size or a duration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cell {
    pub text: String,
    pub value: Option<f64>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            value: None,
        }
    }

    pub fn number(n: i64) -> Cell {
        Cell {
            text: n.to_string(),
            value: Some(n as f64),
        }
    }

    /// A byte size, in the unit `bytes` asks for (a whole number, rounded
    /// down, as Elasticsearch's `RestTable` prints it) or readable.
    pub fn bytes(n: u64, unit: Option<ByteUnit>) -> Cell {
        let text = match unit {
            Some(u) => (n >> u.shift()).to_string(),
            None => human_bytes(n),
        };
        Cell {
            text,
            value: Some(n as f64),
        }
    }

    /// A duration, in the unit `time` asks for (a whole number, rounded
    /// down) or readable (`1.2s`).
    pub fn millis(ms: i64, unit: Option<TimeUnit>) -> Cell {
        let ms = ms.max(0);
        let text = match unit {
            Some(u) => u.of_millis(ms).to_string(),
            None => crate::es::time::human_millis(ms as u64),
        };
        Cell {
            text,
            value: Some(ms as f64),
        }
    }
}

/// `bytes=`: Elasticsearch's byte units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteUnit {
    B,
    Kb,
    Mb,
    Gb,
    Tb,
    Pb,
}

impl ByteUnit {
    fn shift(self) -> u32 {
        match self {
            ByteUnit::B => 0,
            ByteUnit::Kb => 10,
            ByteUnit::Mb => 20,
            ByteUnit::Gb => 30,
            ByteUnit::Tb => 40,
            ByteUnit::Pb => 50,
        }
    }

    pub fn parse(v: Option<&str>) -> Result<Option<ByteUnit>, ApiError> {
        Ok(Some(match v {
            None => return Ok(None),
            Some("b") => ByteUnit::B,
            Some("k" | "kb") => ByteUnit::Kb,
            Some("m" | "mb") => ByteUnit::Mb,
            Some("g" | "gb") => ByteUnit::Gb,
            Some("t" | "tb") => ByteUnit::Tb,
            Some("p" | "pb") => ByteUnit::Pb,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "failed to parse [bytes] with value [{other}]: must be one of [b, kb, mb, gb, tb, pb]"
                )))
            }
        }))
    }
}

/// `time=`: Elasticsearch's time units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    fn of_millis(self, ms: i64) -> i64 {
        match self {
            TimeUnit::Nanos => ms.saturating_mul(1_000_000),
            TimeUnit::Micros => ms.saturating_mul(1_000),
            TimeUnit::Millis => ms,
            TimeUnit::Seconds => ms / 1_000,
            TimeUnit::Minutes => ms / 60_000,
            TimeUnit::Hours => ms / 3_600_000,
            TimeUnit::Days => ms / 86_400_000,
        }
    }

    pub fn parse(v: Option<&str>) -> Result<Option<TimeUnit>, ApiError> {
        Ok(Some(match v {
            None => return Ok(None),
            Some("nanos") => TimeUnit::Nanos,
            Some("micros") => TimeUnit::Micros,
            Some("ms") => TimeUnit::Millis,
            Some("s") => TimeUnit::Seconds,
            Some("m") => TimeUnit::Minutes,
            Some("h") => TimeUnit::Hours,
            Some("d") => TimeUnit::Days,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "failed to parse [time] with value [{other}]: must be one of [d, h, m, s, ms, micros, nanos]"
                )))
            }
        }))
    }
}

/// `5.4kb`, `12mb`, `225b`: a byte size as Elasticsearch prints one (the
/// largest unit it reaches, one decimal when not whole).
pub(crate) fn human_bytes(n: u64) -> String {
    for (unit, shift) in [("pb", 50), ("tb", 40), ("gb", 30), ("mb", 20), ("kb", 10)] {
        let len = 1u64 << shift;
        if n >= len {
            let tenths = (n as u128 * 10 + len as u128 / 2) / len as u128;
            return if tenths % 10 == 0 {
                format!("{}{unit}", tenths / 10)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{n}b")
}

/// The columns `h` selects, as positions in `columns`: each at most once
/// (Elasticsearch keeps `h` in a set), in the order first asked, by name
/// or alias, with `*` wildcards as in Elasticsearch (`h=docs.*`); without
/// `h`, the default columns. However long `h` is, the table has at most
/// `columns.len()` columns. An unknown name is refused: Elasticsearch
/// drops it silently, and a silent drop would hide a column the caller
/// meant.
fn selected_columns(h: Option<&str>, columns: &[Column]) -> Result<Vec<usize>, ApiError> {
    let Some(h) = h else {
        return Ok((0..columns.len()).filter(|&i| columns[i].default).collect());
    };
    let mut selected: Vec<usize> = Vec::new();
    let mut add = |i: usize| {
        if !selected.contains(&i) {
            selected.push(i);
        }
    };
    for name in h.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.contains('*') {
            (0..columns.len())
                .filter(|&i| crate::es::glob::matches(name, columns[i].name))
                .for_each(&mut add);
        } else if let Some(i) = columns.iter().position(|c| c.answers_to(name)) {
            add(i);
        } else {
            let known: Vec<&str> = columns.iter().map(|c| c.name).collect();
            return Err(ApiError::bad_request(format!(
                "header [{name}] is not supported; known: {}",
                known.join(", ")
            )));
        }
    }
    Ok(selected)
}

/// The sort keys of `s`, as (position in `columns`, descending), read as
/// Elasticsearch reads them (`RestTable.getRowOrder`): a name or alias, a
/// `:desc` or `:asc` suffix, and an unknown key refused. A column already
/// sorted on cannot change the order again, so repeats are dropped: at
/// most `columns.len()` keys, whatever the length of `s`.
fn sort_keys(s: &str, columns: &[Column]) -> Result<Vec<(usize, bool)>, ApiError> {
    let mut keys: Vec<(usize, bool)> = Vec::new();
    for key in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (name, desc) = match (key.strip_suffix(":desc"), key.strip_suffix(":asc")) {
            (Some(name), _) => (name, true),
            (None, Some(name)) => (name, false),
            (None, None) => (key, false),
        };
        let Some(i) = columns.iter().position(|c| c.answers_to(name)) else {
            return Err(ApiError::bad_request(format!(
                "Unable to sort by unknown sort key `{name}`"
            )));
        };
        if !keys.iter().any(|(k, _)| *k == i) {
            keys.push((i, desc));
        }
    }
    Ok(keys)
}

/// Two cells in sort order: by value when both have one, else as text.
fn compare_cells(a: &Cell, b: &Cell) -> Ordering {
    match (a.value, b.value) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.text.cmp(&b.text),
    }
}

/// Rows of plain text cells (column name to value) under plain columns:
/// for tables whose cells need no unit and sort as they read (a cell that
/// reads as a number sorts as one).
pub(crate) fn render_rows(
    q: &CatQuery,
    columns: &[&'static str],
    rows: Vec<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let columns: Vec<Column> = columns.iter().map(|c| Column::plain(c)).collect();
    let table = rows
        .into_iter()
        .map(|mut r| {
            columns
                .iter()
                .map(|c| {
                    let text = r
                        .iter()
                        .position(|(k, _)| k == c.name)
                        .map(|i| std::mem::take(&mut r[i].1))
                        .unwrap_or_default();
                    Cell {
                        value: text.parse::<f64>().ok(),
                        text,
                    }
                })
                .collect()
        })
        .collect();
    render_table(q, &columns, table)
}

/// Renders a table (each row's cells in the order of `columns`) as
/// Elasticsearch's cat output. The work is bounded by rows × columns
/// whatever `h` and `s` hold: both are reduced to distinct known columns
/// first, before one stable sort. The rows are written into the answer as
/// it is sent ([`super::chunked`]): a table of thousands of rows is never
/// one buffer.
pub(crate) fn render_table(
    q: &CatQuery,
    columns: &[Column],
    table: Vec<Vec<Cell>>,
) -> Result<Response, ApiError> {
    let _ = (&q.ignore_unavailable, &q.expand_wildcards, &q.health);
    ByteUnit::parse(q.bytes.as_deref())?;
    TimeUnit::parse(q.time.as_deref())?;
    if flag(&q.help, "help", false)? {
        return Ok(text(help_text(columns).into()));
    }
    let selected = selected_columns(q.h.as_deref(), columns)?;
    let keys = match &q.s {
        Some(s) => sort_keys(s, columns)?,
        None => Vec::new(),
    };
    let order = row_order(&table, &keys);
    let table = Table {
        columns: columns.to_vec(),
        selected,
        rows: table,
    };
    match q.format.as_deref() {
        Some("json") => Ok(json_rows(table, order)),
        None | Some("text") | Some("txt") => {
            let header = flag(&q.v, "v", false)?;
            Ok(text(TextTable::new(table, header).into_body(order)))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported format [{other}]"
        ))),
    }
}

fn text(body: Body) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=UTF-8",
        )],
        body,
    )
        .into_response()
}

/// `help`: one line per column, `name | aliases | description`, aligned.
fn help_text(columns: &[Column]) -> String {
    let lines: Vec<[String; 3]> = columns
        .iter()
        .map(|c| {
            let mut aliases: Vec<&str> = c.aliases.to_vec();
            if aliases.is_empty() {
                aliases.push(c.name);
            }
            let desc = if c.desc.is_empty() { "-" } else { c.desc };
            [c.name.to_string(), aliases.join(","), desc.to_string()]
        })
        .collect();
    let width = |i: usize| lines.iter().map(|l| l[i].len()).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    lines
        .iter()
        .map(|l| format!("{:<w0$} | {:<w1$} | {}\n", l[0], l[1], l[2]))
        .collect()
}

/// The order to show rows in: by the sort keys, stable; the table's own
/// order without keys.
fn row_order(table: &[Vec<Cell>], keys: &[(usize, bool)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..table.len()).collect();
    if keys.is_empty() {
        return order;
    }
    order.sort_by(|&a, &b| {
        keys.iter()
            .map(|&(i, desc)| {
                let ord = compare_cells(&table[a][i], &table[b][i]);
                if desc {
                    ord.reverse()
                } else {
                    ord
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    order
}

/// A table owned by the answer that writes it.
struct Table {
    columns: Vec<Column>,
    /// Positions in `columns`, in the order shown.
    selected: Vec<usize>,
    rows: Vec<Vec<Cell>>,
}

/// One row of a table as a JSON object of the selected columns.
struct JsonRow<'a>(&'a Table, usize);

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Table {
            columns,
            selected,
            rows,
        } = self.0;
        let mut map = s.serialize_map(Some(selected.len()))?;
        for &c in selected {
            map.serialize_entry(columns[c].name, &rows[self.1][c].text)?;
        }
        map.end()
    }
}

/// `format=json`: one object per row, the selected columns as strings
/// (Elasticsearch's cat JSON holds the printed values).
fn json_rows(table: Table, order: Vec<usize>) -> Response {
    super::chunked::json_array(
        b"[".to_vec(),
        order.into_iter(),
        move |out, r| serde_json::to_writer(out, &JsonRow(&table, r)),
        b"]".to_vec(),
    )
}

/// The aligned text table: an optional header line, then one row per
/// line, right-aligned columns padded on the left, whatever a name holds
/// (names stored before control and format characters were refused are
/// shown escaped), trailing blanks trimmed. The widths are measured over
/// every line first; the lines are then written as the answer is sent.
struct TextTable {
    table: Table,
    header: bool,
    widths: Vec<usize>,
}

impl TextTable {
    fn new(table: Table, header: bool) -> TextTable {
        let mut widths: Vec<usize> = table
            .selected
            .iter()
            .map(|&c| match header {
                true => table.columns[c].name.chars().count(),
                false => 0,
            })
            .collect();
        for row in &table.rows {
            for (w, &c) in widths.iter_mut().zip(&table.selected) {
                *w = (*w).max(crate::es::shown(&row[c].text).chars().count());
            }
        }
        TextTable {
            table,
            header,
            widths,
        }
    }

    /// Writes the header line (`None`) or row `r`, reusing `line`.
    fn write_line(&self, out: &mut Vec<u8>, line: &mut String, r: Option<usize>) {
        use std::fmt::Write;
        line.clear();
        for (i, (&c, &w)) in self.table.selected.iter().zip(&self.widths).enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let v = match r {
                None => std::borrow::Cow::Borrowed(self.table.columns[c].name),
                Some(r) => crate::es::shown(&self.table.rows[r][c].text),
            };
            let _ = if self.table.columns[c].right {
                write!(line, "{v:>w$}")
            } else {
                write!(line, "{v:<w$}")
            };
        }
        out.extend_from_slice(line.trim_end().as_bytes());
        out.push(b'\n');
    }

    fn into_body(self, order: Vec<usize>) -> Body {
        let lines = self
            .header
            .then_some(None)
            .into_iter()
            .chain(order.into_iter().map(Some));
        let mut line = String::new();
        super::chunked::body(lines, move |out, r| self.write_line(out, &mut line, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[Column] = &[
        Column::plain("index"),
        Column {
            name: "docs.count",
            aliases: &["dc", "docsCount"],
            desc: "available docs",
            default: true,
            right: true,
        },
        Column::plain("docs.deleted"),
        Column {
            name: "store.size",
            aliases: &[],
            desc: "",
            default: false,
            right: true,
        },
    ];

    fn t(s: &str) -> Cell {
        Cell::text(s)
    }

    #[test]
    fn headers_are_distinct_known_columns_by_name_or_alias() {
        assert_eq!(selected_columns(None, COLS).unwrap(), vec![0, 1, 2]);
        let many = vec!["index"; 10_000].join(",");
        assert_eq!(selected_columns(Some(&many), COLS).unwrap(), vec![0]);
        assert_eq!(
            selected_columns(Some("dc, index,docs.count"), COLS).unwrap(),
            vec![1, 0]
        );
        assert_eq!(
            selected_columns(Some("docs.*,index"), COLS).unwrap(),
            vec![1, 2, 0]
        );
        assert_eq!(selected_columns(Some("store.size"), COLS).unwrap(), vec![3]);
        assert!(selected_columns(Some("index,nope"), COLS).is_err());
    }

    #[test]
    fn sort_keys_are_distinct_known_columns_with_elasticsearch_suffixes() {
        let many = vec!["index:desc"; 5000].join(",");
        assert_eq!(sort_keys(&many, COLS).unwrap(), vec![(0, true)]);
        assert_eq!(
            sort_keys("dc:asc,index,docs.count:desc", COLS).unwrap(),
            vec![(1, false), (0, false)]
        );
        let e = sort_keys("index:sideways", COLS).unwrap_err();
        assert_eq!(
            e.reason,
            "Unable to sort by unknown sort key `index:sideways`"
        );
        assert!(sort_keys("nope", COLS).is_err());
    }

    #[test]
    fn sizes_and_durations_sort_by_value_not_by_text() {
        let table = vec![
            vec![t("a"), t(""), t(""), Cell::bytes(2048, None)],
            vec![t("b"), t(""), t(""), Cell::bytes(900, None)],
            vec![t("c"), t(""), t(""), Cell::bytes(1 << 20, None)],
        ];
        assert_eq!(table[0][3].text, "2kb");
        assert_eq!(table[1][3].text, "900b");
        assert_eq!(row_order(&table, &[(3, false)]), vec![1, 0, 2]);
        assert_eq!(Cell::millis(1500, None).text, "1.5s");
        assert_eq!(Cell::millis(1500, Some(TimeUnit::Millis)).text, "1500");
        assert_eq!(Cell::millis(1500, Some(TimeUnit::Seconds)).text, "1");
        assert_eq!(Cell::bytes(5 << 20, Some(ByteUnit::Kb)).text, "5120");
        assert_eq!(human_bytes(5530), "5.4kb");
        assert!(ByteUnit::parse(Some("yb")).is_err());
        assert!(TimeUnit::parse(Some("weeks")).is_err());
    }

    #[test]
    fn text_tables_align_columns_and_right_align_numbers() {
        let table = vec![
            vec![t("b"), Cell::number(10), t(""), t("")],
            vec![t("longer"), Cell::number(9), t(""), t("")],
        ];
        let order = row_order(&table, &[(1, false)]);
        assert_eq!(order, vec![1, 0]);
        let table = |selected: Vec<usize>| Table {
            columns: COLS.to_vec(),
            selected,
            rows: table.clone(),
        };
        let text = TextTable::new(table(vec![0, 1]), true);
        let (mut out, mut line) = (Vec::new(), String::new());
        for r in [None, Some(1), Some(0)] {
            text.write_line(&mut out, &mut line, r);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "index  docs.count\nlonger          9\nb              10\n"
        );
        let json = serde_json::to_value(JsonRow(&table(vec![1]), 0)).unwrap();
        assert_eq!(json, serde_json::json!({"docs.count": "10"}));
    }

    #[test]
    fn help_lists_every_column_with_aliases_and_description() {
        let help = help_text(&COLS[..2]);
        assert_eq!(
            help,
            "index      | index        | -\ndocs.count | dc,docsCount | available docs\n"
        );
    }
}
