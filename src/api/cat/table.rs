//! How a `_cat` table is selected, sorted and drawn: `h` picks columns,
//! `s` orders rows, `v` adds a header, `format=json` gives objects. The
//! work stays bounded by rows × columns whatever the query repeats. This
//! module draws what it is given; it gathers no data.

use std::cmp::Ordering;

use axum::response::{IntoResponse, Response};

use super::super::error::ApiError;
use super::super::extract::flag;
use super::CatQuery;

/// The columns `h` selects, as positions in `columns`: each at most once
/// (Elasticsearch keeps `h` in a set), in the order first asked, with `*`
/// wildcards as in Elasticsearch (`h=docs.*`). However long `h` is, the
/// table has at most `columns.len()` columns. An unknown name is refused:
/// Elasticsearch drops it silently, but it also knows aliases (`i`, `dc`)
/// we do not, so a silent drop here would hide a column the caller meant.
fn selected_columns(h: Option<&str>, columns: &[&str]) -> Result<Vec<usize>, ApiError> {
    let Some(h) = h else {
        return Ok((0..columns.len()).collect());
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
                .filter(|&i| crate::es::glob::matches(name, columns[i]))
                .for_each(&mut add);
        } else if let Some(i) = columns.iter().position(|c| *c == name) {
            add(i);
        } else {
            return Err(ApiError::bad_request(format!(
                "header [{name}] is not supported; known: {}",
                columns.join(", ")
            )));
        }
    }
    Ok(selected)
}

/// The sort keys of `s`, as (position in `columns`, descending), read as
/// Elasticsearch reads them (`RestTable.getRowOrder`): a `:desc` or `:asc`
/// suffix, and an unknown key refused. A column already sorted on cannot
/// change the order again, so repeats are dropped: at most
/// `columns.len()` keys, whatever the length of `s`.
fn sort_keys(s: &str, columns: &[&str]) -> Result<Vec<(usize, bool)>, ApiError> {
    let mut keys: Vec<(usize, bool)> = Vec::new();
    for key in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (name, desc) = match (key.strip_suffix(":desc"), key.strip_suffix(":asc")) {
            (Some(name), _) => (name, true),
            (None, Some(name)) => (name, false),
            (None, None) => (key, false),
        };
        let Some(i) = columns.iter().position(|c| *c == name) else {
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

/// One cell as a sort key, read once per row rather than per comparison:
/// numbers compare as numbers, anything else as text.
fn sort_cell(v: &str) -> (Option<f64>, &str) {
    (v.parse::<f64>().ok(), v)
}

fn compare_cells(a: &(Option<f64>, &str), b: &(Option<f64>, &str)) -> Ordering {
    match (a.0, b.0) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.1.cmp(b.1),
    }
}

/// Renders rows (column name to value) as Elasticsearch's cat output. The
/// work is bounded by rows × columns whatever `h` and `s` hold: both are
/// reduced to distinct known columns first, and each row's sort keys are
/// read once before one stable sort.
pub(crate) fn render_rows(
    q: &CatQuery,
    columns: &[&str],
    rows: Vec<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let _ = (
        &q.bytes,
        &q.ignore_unavailable,
        &q.expand_wildcards,
        &q.health,
        &q.help,
    );
    let selected = selected_columns(q.h.as_deref(), columns)?;
    let keys = match &q.s {
        Some(s) => sort_keys(s, columns)?,
        None => Vec::new(),
    };
    let table = in_column_order(columns, rows);
    let order = row_order(&table, &keys);
    match q.format.as_deref() {
        Some("json") => {
            Ok(axum::Json(json_rows(columns, &selected, &table, &order)).into_response())
        }
        None | Some("text") | Some("txt") => {
            let header = flag(&q.v, "v", false)?
                .then(|| selected.iter().map(|&c| columns[c].to_string()).collect());
            Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=UTF-8",
                )],
                text_table(header, &selected, &table, &order),
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported format [{other}]"
        ))),
    }
}

/// Each row as its cells in the order of `columns` (missing ones empty).
fn in_column_order(columns: &[&str], rows: Vec<Vec<(String, String)>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|mut r| {
            columns
                .iter()
                .map(|c| {
                    r.iter()
                        .position(|(k, _)| k == c)
                        .map(|i| std::mem::take(&mut r[i].1))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// The order to show rows in: by the sort keys, stable, each row's keys
/// read once; the table's own order without keys.
fn row_order(table: &[Vec<String>], keys: &[(usize, bool)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..table.len()).collect();
    if keys.is_empty() {
        return order;
    }
    let row_keys: Vec<Vec<(Option<f64>, &str)>> = table
        .iter()
        .map(|r| keys.iter().map(|(i, _)| sort_cell(&r[*i])).collect())
        .collect();
    order.sort_by(|&a, &b| {
        keys.iter()
            .enumerate()
            .map(|(k, (_, desc))| {
                let ord = compare_cells(&row_keys[a][k], &row_keys[b][k]);
                if *desc {
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

/// `format=json`: one object per row, the selected columns as strings.
fn json_rows(
    columns: &[&str],
    selected: &[usize],
    table: &[Vec<String>],
    order: &[usize],
) -> Vec<serde_json::Value> {
    order
        .iter()
        .map(|&r| {
            serde_json::Value::Object(
                selected
                    .iter()
                    .map(|&c| {
                        (
                            columns[c].to_string(),
                            serde_json::Value::String(table[r][c].clone()),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// The aligned text table: an optional header line, then one row per
/// line, whatever a name holds (names stored before control and format
/// characters were refused are shown escaped), trailing blanks trimmed.
fn text_table(
    header: Option<Vec<String>>,
    selected: &[usize],
    table: &[Vec<String>],
    order: &[usize],
) -> String {
    let mut lines: Vec<Vec<String>> = header.into_iter().collect();
    lines.extend(order.iter().map(|&r| {
        selected
            .iter()
            .map(|&c| crate::es::shown(&table[r][c]).into_owned())
            .collect()
    }));
    let widths: Vec<usize> = (0..selected.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for l in lines {
        let line: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        text.push_str(line.join(" ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::row;
    use super::*;

    const COLS: &[&str] = &["index", "docs.count", "docs.deleted", "store.size"];

    #[test]
    fn headers_are_distinct_known_columns_and_accept_wildcards() {
        assert_eq!(selected_columns(None, COLS).unwrap(), vec![0, 1, 2, 3]);
        let many = vec!["index"; 10_000].join(",");
        assert_eq!(selected_columns(Some(&many), COLS).unwrap(), vec![0]);
        assert_eq!(
            selected_columns(Some("docs.count, index,docs.count"), COLS).unwrap(),
            vec![1, 0]
        );
        assert_eq!(
            selected_columns(Some("docs.*,index"), COLS).unwrap(),
            vec![1, 2, 0]
        );
        assert!(selected_columns(Some("index,nope"), COLS).is_err());
    }

    #[test]
    fn sort_keys_are_distinct_known_columns_with_elasticsearch_suffixes() {
        let many = vec!["index:desc"; 5000].join(",");
        assert_eq!(sort_keys(&many, COLS).unwrap(), vec![(0, true)]);
        assert_eq!(
            sort_keys("docs.count:asc,index,docs.count:desc", COLS).unwrap(),
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
    fn text_tables_align_columns_and_sort_numbers_as_numbers() {
        let rows = vec![
            row(&[("index", "b".into()), ("docs.count", "10".into())]),
            row(&[("index", "longer".into()), ("docs.count", "9".into())]),
            row(&[("index", "a".into())]),
        ];
        let table = in_column_order(COLS, rows);
        assert_eq!(table[2], vec!["a", "", "", ""]);
        let order = row_order(&table, &[(1, true)]);
        assert_eq!(order, vec![0, 1, 2]);
        let order = row_order(&table, &[(1, false), (0, false)]);
        assert_eq!(order, vec![2, 1, 0]);
        let header = Some(vec!["index".to_string(), "docs.count".to_string()]);
        assert_eq!(
            text_table(header, &[0, 1], &table, &order),
            "index  docs.count\na\nlonger 9\nb      10\n"
        );
        let json = json_rows(COLS, &[1], &table, &[0]);
        assert_eq!(json, vec![serde_json::json!({"docs.count": "10"})]);
    }

    #[test]
    fn cells_compare_as_numbers_when_both_are() {
        let cmp = |a: &str, b: &str| compare_cells(&sort_cell(a), &sort_cell(b));
        assert_eq!(cmp("9", "10"), Ordering::Less);
        assert_eq!(cmp("b", "a"), Ordering::Greater);
        assert_eq!(cmp("10", "9b"), Ordering::Less);
    }
}
