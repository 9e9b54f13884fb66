//! More hostile input, from the security review: a restore whose
//! `rename_replacement` multiplies into gigabytes, `size=0` on get
//! snapshots, invisible format characters (bidi overrides, zero-width
//! spaces) in names, and `_cat` parameters that repeat a column thousands of
//! times. Each answers quickly with an Elasticsearch error or a small
//! answer, and leaves the server serving.

use serde_json::json;

use super::harness::Resp;
use super::hostile_input::{assert_refused_everywhere, within, Isolated};

/// Bidi controls and zero-width characters: Unicode's format characters.
const FORMAT_CHARS: &[char] = &[
    '\u{202e}', '\u{202a}', '\u{200e}', '\u{200f}', '\u{2066}', '\u{2069}', '\u{061c}', '\u{200b}',
    '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{ad}',
];

fn is_format_char(c: char) -> bool {
    FORMAT_CHARS.contains(&c)
}

/// No raw control or format character in the answer or its reason.
fn assert_nothing_invisible(r: &Resp) {
    let bad = |s: &str| s.chars().any(|c| c.is_control() || is_format_char(c));
    assert!(
        !bad(&r.reason()),
        "raw invisible characters in the reason: {:?}",
        r.reason()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_rename_replacement_is_refused_quickly_and_a_normal_rename_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    let long = "a".repeat(255);
    s.create_index(&long, 1).await;
    s.create_index("short", 1).await;
    s.put_fs_repository("r", "r").await;
    s.create_snapshot("r", "s1", "*").await;
    let restore = "/_snapshot/r/s1/_restore?wait_for_completion=true";

    // 256 empty matches times 1 MB would be a 256 MB name (5 GB with the
    // reviewer's 20 MB body, which aborted the process).
    let huge = "b".repeat(1 << 20);
    let r = within(
        "a 1 MB rename_replacement",
        s.call(
            "POST",
            restore,
            Some(json!({"indices": "*", "rename_pattern": "", "rename_replacement": huge})),
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.error_type(), "illegal_argument_exception");
    assert!(r.reason().contains("rename_replacement"), "{}", r.reason());
    assert!(r.text.len() < 1024, "a {}-byte answer", r.text.len());

    // A replacement within the limit whose result would not be: the name
    // stops being built once it is past 255 bytes.
    for (pattern, replacement) in [("", "b".repeat(200)), ("(a+)", "$1$1".to_string())] {
        let r = within(
            "a rename past 255 bytes",
            s.call(
                "POST",
                restore,
                Some(json!({"indices": long, "rename_pattern": pattern, "rename_replacement": replacement})),
            ),
        )
        .await;
        assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
        assert_eq!(r.error_type(), "illegal_argument_exception");
        assert!(r.reason().contains("exceed"), "{}", r.reason());
        assert!(r.text.len() < 1024, "a {}-byte answer", r.text.len());
    }

    // Renames within the limits still work, up to exactly 255 bytes.
    let out = s
        .restore(
            "r",
            "s1",
            json!({"indices": "short", "rename_pattern": "(.+)", "rename_replacement": "restored_$1"}),
        )
        .await;
    assert_eq!(out["snapshot"]["indices"], json!(["restored_short"]));
    let at_limit = format!("b{}", "a".repeat(254));
    let out = s
        .restore(
            "r",
            "s1",
            json!({"indices": long, "rename_pattern": "^a", "rename_replacement": "b"}),
        )
        .await;
    assert_eq!(out["snapshot"]["indices"], json!([at_limit]));
    s.ok("GET", &format!("/{at_limit}/_count"), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_snapshots_refuses_size_zero_as_elasticsearch_and_pages_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.create_index("idx", 1).await;
    s.put_fs_repository("f1", "f1").await;
    s.create_snapshot("f1", "s1", "idx").await;
    s.create_snapshot("f1", "s2", "idx").await;

    for size in ["0", "-2"] {
        let path = format!("/_snapshot/f1/_all?size={size}");
        let r = within(&path, s.call("GET", &path, None)).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.error_type(), "action_request_validation_exception");
        assert_eq!(
            r.reason(),
            "Validation Failed: 1: size must be -1 or greater than 0;"
        );
    }
    // -1 is Elasticsearch's "no limit".
    let all = s.ok("GET", "/_snapshot/f1/_all?size=-1", None).await;
    assert_eq!(all["snapshots"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["remaining"], 0);

    let first = s
        .ok("GET", "/_snapshot/f1/_all?size=1&sort=name", None)
        .await;
    assert_eq!(first["snapshots"][0]["snapshot"], "s1", "{first}");
    assert_eq!(first["remaining"], 1);
    let next = first["next"].as_str().unwrap();
    let second = s
        .ok(
            "GET",
            &format!("/_snapshot/f1/_all?size=1&sort=name&after={next}"),
            None,
        )
        .await;
    assert_eq!(second["snapshots"][0]["snapshot"], "s2", "{second}");
    assert_eq!(second["remaining"], 0);
    assert!(second.get("next").is_none_or(|n| n.is_null()), "{second}");
    // An offset past the end answers an empty page.
    let past = s.ok("GET", "/_snapshot/f1/_all?offset=5", None).await;
    assert_eq!(past["snapshots"], json!([]), "{past}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bidi_and_zero_width_characters_in_names_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.create_index("idx", 1).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;

    // The reviewer's file-name spoof first: `evil<U+202E>gnp.exe` shows
    // as `evilexe.png`.
    let r = within(
        "PUT a spoofed index name",
        s.call("PUT", "/evil%E2%80%AEgnp.exe/_doc/1", Some(json!({"a": 1}))),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "invalid_index_name_exception");
    assert!(r.reason().contains("\\u{202e}"), "{}", r.reason());
    assert_nothing_invisible(&r);

    for &c in FORMAT_CHARS {
        let invisible: fn(char) -> bool = |c| c.is_control() || is_format_char(c);
        assert_refused_everywhere(&s, &format!("bad{c}name"), invisible).await;
    }

    let cat = s.call("GET", "/_cat/indices?h=index", None).await;
    assert_eq!(cat.text.trim(), "idx");
    let repos = s.ok("GET", "/_snapshot/_all", None).await;
    assert_eq!(
        repos.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["repo"]
    );
    let snaps = s.ok("GET", "/_snapshot/repo/_all", None).await;
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 1, "{snaps}");
    // Letters outside ASCII are still names.
    s.create_index("café-日本", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cat_columns_repeated_thousands_of_times_answer_quickly_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    for i in 0..201 {
        s.create_index(&format!("index-{i:03}"), 1).await;
    }
    let sorted = vec!["index:desc"; 5000].join(",");
    let r = within(
        "5000 sort keys",
        s.call("GET", &format!("/_cat/indices?h=index&s={sorted}"), None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 201);
    assert_eq!((lines[0], lines[200]), ("index-200", "index-000"));

    let headers = vec!["index"; 10000].join(",");
    let r = within(
        "10000 headers",
        s.call("GET", &format!("/_cat/indices?h={headers}&s=index"), None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);
    assert!(r.text.len() < 201 * 16, "a {}-byte answer", r.text.len());
    assert_eq!(r.text.lines().next(), Some("index-000"));

    let r = within(
        "10000 headers as json",
        s.call(
            "GET",
            &format!("/_cat/indices?h={headers}&format=json"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body[0].as_object().unwrap().len(), 1, "{}", r.body[0]);

    // Several columns, each once, in the asked order; sort by a number
    // then by name.
    let r = s
        .call(
            "GET",
            "/_cat/indices/index-00*?h=docs.count,index,docs.count&s=docs.count:desc,index:asc",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.text
            .lines()
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0", "index-000"])
    );

    for path in [
        "/_cat/indices?s=nope",
        "/_cat/indices?s=index:sideways",
        "/_cat/indices?h=index,nope",
    ] {
        let r = within(path, s.call("GET", path, None)).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.error_type(), "illegal_argument_exception");
    }
}
