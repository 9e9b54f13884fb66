//! `filter_path`, as Elasticsearch reads it (its `FilterPath` and
//! `FilterPathBasedFilter`): comma-separated dotted paths; `*` inside a
//! segment is a [glob](super::glob); a `**` segment stands for one level or
//! more; `\.` is a dot inside a key; a path starting with `-` excludes.
//! Exclusions apply first, then inclusions. Containers left empty by
//! filtering disappear, and an answer with nothing left is `{}`.
//!
//! The filter is compiled once into a list of paths. While walking the JSON,
//! the state at each node is the *deduplicated* set of (path, position)
//! pairs still alive there; a `**` both stays and advances. So the work is
//! at most the number of nodes times the number of segments, whatever the
//! number of `**` (copying the path list at each `**`, as this replaced,
//! needed 24 GB for 12 of them over a 40-level document). The input is
//! bounded by the limits below. Values to filter come from `serde_json`'s
//! parser, which refuses nesting deeper than 128, so the recursion is
//! bounded too.

use serde_json::{Map, Value};

use super::{glob, Error};

/// Longest `filter_path`, in bytes (Elasticsearch's whole request line is
/// limited to 4 KiB by default).
pub const MAX_FILTER_PATH_BYTES: usize = 4096;
/// Most comma-separated filters in one `filter_path`.
pub const MAX_FILTERS: usize = 128;
/// Most segments over all filters: the largest state set at one node.
pub const MAX_SEGMENTS: usize = 512;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `**`: one level or more.
    AnyDepth,
    /// A key, possibly with `*` globs.
    Key(String),
}

/// One direction of filtering: the paths and where each may be.
#[derive(Debug, Clone, PartialEq)]
struct Paths(Vec<Vec<Segment>>);

/// (path, position of the next segment to match).
type State = (usize, usize);

/// A compiled `filter_path`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPath {
    include: Option<Paths>,
    exclude: Option<Paths>,
}

impl FilterPath {
    /// Compiles `raw`; `None` when it holds no filter at all (empty
    /// entries are ignored, as Elasticsearch does).
    pub fn parse(raw: &str) -> Result<Option<FilterPath>, Error> {
        let too_large = |found, limit, unit| Error::TooLarge {
            what: "filter_path",
            found,
            limit,
            unit,
        };
        if raw.len() > MAX_FILTER_PATH_BYTES {
            return Err(too_large(raw.len(), MAX_FILTER_PATH_BYTES, "bytes"));
        }
        let filters: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if filters.len() > MAX_FILTERS {
            return Err(too_large(filters.len(), MAX_FILTERS, "filters"));
        }
        let (mut include, mut exclude) = (Vec::new(), Vec::new());
        let mut segments = 0;
        for f in filters {
            let (into, f) = match f.strip_prefix('-') {
                Some(rest) => (&mut exclude, rest),
                None => (&mut include, f),
            };
            if f.is_empty() {
                continue;
            }
            let path = split_segments(f);
            segments += path.len();
            into.push(path);
        }
        if segments > MAX_SEGMENTS {
            return Err(too_large(segments, MAX_SEGMENTS, "segments"));
        }
        let paths = |p: Vec<Vec<Segment>>| (!p.is_empty()).then_some(Paths(p));
        Ok(match (paths(include), paths(exclude)) {
            (None, None) => None,
            (include, exclude) => Some(FilterPath { include, exclude }),
        })
    }

    /// Filters `v`: exclusions first, then inclusions.
    pub fn apply(&self, v: Value) -> Value {
        let empty = |v: &Value| match v {
            Value::Array(_) => Value::Array(Vec::new()),
            _ => Value::Object(Map::new()),
        };
        let mut v = v;
        if let Some(ex) = &self.exclude {
            let shape = empty(&v);
            v = ex.exclude(v, &ex.start()).unwrap_or(shape);
        }
        if let Some(inc) = &self.include {
            let shape = empty(&v);
            v = inc.include(v, &inc.start()).unwrap_or(shape);
        }
        v
    }
}

/// Splits at `.`, reading `\.` as a dot inside a key.
fn split_segments(f: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                cur.push('.');
                chars.next();
            }
            '.' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| {
            if s == "**" {
                Segment::AnyDepth
            } else {
                Segment::Key(s)
            }
        })
        .collect()
}

impl Paths {
    fn start(&self) -> Vec<State> {
        (0..self.0.len()).map(|p| (p, 0)).collect()
    }

    /// The states alive under `key`, deduplicated, and whether some path
    /// ends at `key` (it selects the whole value).
    fn step(&self, states: &[State], key: &str) -> (Vec<State>, bool) {
        let mut next = Vec::new();
        for &(p, i) in states {
            let path = &self.0[p];
            let last = i + 1 == path.len();
            match &path[i] {
                Segment::AnyDepth if last => return (Vec::new(), true),
                Segment::AnyDepth => {
                    next.push((p, i));
                    next.push((p, i + 1));
                }
                Segment::Key(k) if glob::matches(k, key) => {
                    if last {
                        return (Vec::new(), true);
                    }
                    next.push((p, i + 1));
                }
                Segment::Key(_) => {}
            }
        }
        next.sort_unstable();
        next.dedup();
        (next, false)
    }

    /// What the paths select of `v`; `None` when nothing.
    fn include(&self, v: Value, states: &[State]) -> Option<Value> {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, child) in map {
                    let (next, whole) = self.step(states, &k);
                    if whole {
                        out.insert(k, child);
                    } else if !next.is_empty() {
                        if let Some(kept) = self.include(child, &next) {
                            out.insert(k, kept);
                        }
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) => {
                let kept: Vec<Value> = items
                    .into_iter()
                    .filter_map(|i| self.include(i, states))
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            // A scalar where a path is still looking deeper is not selected.
            _ => None,
        }
    }

    /// `v` without what the paths select; `None` when nothing is left of a
    /// container the paths looked into.
    fn exclude(&self, v: Value, states: &[State]) -> Option<Value> {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, child) in map {
                    let (next, whole) = self.step(states, &k);
                    if whole {
                        continue;
                    }
                    if next.is_empty() {
                        out.insert(k, child);
                    } else if let Some(kept) = self.exclude(child, &next) {
                        out.insert(k, kept);
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) => {
                let kept: Vec<Value> = items
                    .into_iter()
                    .filter_map(|i| self.exclude(i, states))
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            scalar => Some(scalar),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The sample of Elasticsearch's `FilterPathGeneratorFilteringTests`.
    fn sample() -> Value {
        json!({"a": 0, "b": true, "c": "c_value", "d": [0, 1, 2],
            "e": [{"f1": "f1_value", "f2": "f2_value"}, {"g1": "g1_value", "g2": "g2_value"}],
            "h": {"i": {"j": {"k": {"l": "l_value"}}}}})
    }

    fn filter(f: &str, v: Value) -> Value {
        FilterPath::parse(f).unwrap().unwrap().apply(v)
    }

    #[test]
    fn inclusive_filters_match_elasticsearch() {
        let h = json!({"h": {"i": {"j": {"k": {"l": "l_value"}}}}});
        for (f, want) in [
            ("a", json!({"a": 0})),
            ("d", json!({"d": [0, 1, 2]})),
            ("z", json!({})),
            ("e.f1", json!({"e": [{"f1": "f1_value"}]})),
            ("e.f*", json!({"e": [{"f1": "f1_value", "f2": "f2_value"}]})),
            (
                "e.*2",
                json!({"e": [{"f2": "f2_value"}, {"g2": "g2_value"}]}),
            ),
            ("h.i.j.k.l", h.clone()),
            ("*.i.j", h.clone()),
            ("h.*.j.*.l", h.clone()),
            ("**.l", h.clone()),
            (
                "**.*2",
                json!({"e": [{"f2": "f2_value"}, {"g2": "g2_value"}]}),
            ),
            ("h.i.j.k.l,h.i.j.k.l.m", h.clone()),
            ("a,b,c,d,e.f1,e.f2,e.g1,e.g2,h.i.j.k.l", sample()),
            // A path that goes deeper than a scalar selects nothing.
            ("a.x", json!({})),
            ("d.x", json!({})),
        ] {
            assert_eq!(filter(f, sample()), want, "{f}");
        }
    }

    #[test]
    fn exclusive_filters_match_elasticsearch() {
        let mut without_h = sample();
        without_h.as_object_mut().unwrap().remove("h");
        for (f, want) in [
            ("-z", sample()),
            ("-h.i", without_h.clone()),
            ("-h.i.j.k.l", without_h.clone()),
            ("-**.l", without_h.clone()),
            (
                "-e.f1",
                json!({"a": 0, "b": true, "c": "c_value", "d": [0, 1, 2],
                    "e": [{"f2": "f2_value"}, {"g1": "g1_value", "g2": "g2_value"}],
                    "h": {"i": {"j": {"k": {"l": "l_value"}}}}}),
            ),
            ("-a,-b,-c,-d,-e.f1,-e.f2,-e.g1,-e.g2,-h.i.j.k.l", json!({})),
            // Scalars where an exclusion looks deeper stay.
            ("-d.x", sample()),
        ] {
            assert_eq!(filter(f, sample()), want, "{f}");
        }
    }

    #[test]
    fn exclusions_apply_before_inclusions() {
        let v =
            json!({"indices": {"logs-1": {"state": "open", "x": 1}, "my-1": {"state": "open"}}});
        assert_eq!(
            filter("indices.*.state,-indices.logs-*", v),
            json!({"indices": {"my-1": {"state": "open"}}})
        );
    }

    #[test]
    fn escaped_dots_and_double_wildcards() {
        let v = json!({"a": 0, "b.c": "value", "b": {"c": "c_value"}});
        assert_eq!(filter("b.c", v.clone()), json!({"b": {"c": "c_value"}}));
        assert_eq!(filter(r"b\.c", v.clone()), json!({"b.c": "value"}));
        assert_eq!(
            filter(r"-b\.c", v.clone()),
            json!({"a": 0, "b": {"c": "c_value"}})
        );
        // `**` is one level or more: it does not select a top-level key.
        assert_eq!(filter("**.a", v.clone()), json!({}));
        assert_eq!(filter("b.**", v.clone()), json!({"b": {"c": "c_value"}}));
        assert_eq!(filter("**", v.clone()), v);
    }

    #[test]
    fn empty_filters_filter_nothing_and_arrays_stay_arrays() {
        assert_eq!(FilterPath::parse("").unwrap(), None);
        assert_eq!(FilterPath::parse(" , ,-").unwrap(), None);
        let rows = json!([{"index": "a", "health": "green"}]);
        // Arrays are transparent: `index` selects a key of each element.
        assert_eq!(filter("index", rows.clone()), json!([{"index": "a"}]));
        assert_eq!(filter("zzz", rows), json!([]));
    }

    #[test]
    fn many_double_wildcards_over_a_deep_document_stay_linear() {
        let deep = (0..120).fold(json!({"leaf": 1}), |v, _| json!({ "k": v }));
        let f = format!("{}leaf,{}zzz", "**.".repeat(60), "**.".repeat(60));
        let started = std::time::Instant::now();
        let out = filter(&f, deep.clone());
        assert_eq!(out, deep);
        assert_eq!(
            filter(&format!("{}zzz", "**.".repeat(100)), deep),
            json!({})
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn oversized_filters_are_refused() {
        let e = FilterPath::parse(&"a".repeat(MAX_FILTER_PATH_BYTES + 1)).unwrap_err();
        assert!(e.to_string().contains("4097 > 4096 bytes"), "{e}");
        let e = FilterPath::parse(&vec!["a"; MAX_FILTERS + 1].join(",")).unwrap_err();
        assert!(e.to_string().contains("129 > 128 filters"), "{e}");
        let e = FilterPath::parse(&vec!["a.b.c.d.e"; 110].join(",")).unwrap_err();
        assert!(e.to_string().contains("550 > 512 segments"), "{e}");
    }
}
