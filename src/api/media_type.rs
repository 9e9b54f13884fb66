//! Request `Content-Type` as Elasticsearch judges it (`RestController`,
//! `RestRequest`, `ParsedMediaType`, `XContentType`): pure parsing, no
//! HTTP. A malformed header is a 400 `media_type_header_exception` on any
//! request; a body whose type is missing or not JSON is Elasticsearch's
//! 406 `{"error":"Content-Type header [...] is not supported","status":406}`.
//! Refusing the browser-safelisted types (`text/plain`, forms) is what
//! keeps a web page from sending this node a JSON body without a preflight.

/// What a request's `Content-Type` headers amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// JSON or NDJSON (or no header at all, fine for a request without a
    /// body).
    Json,
    /// No `Content-Type`: a body is refused with "Content-Type header is
    /// missing".
    Missing,
    /// Well-formed but not a type snapvault reads: a body is refused with
    /// "Content-Type header [..] is not supported".
    Unsupported(String),
    /// Malformed, repeated, empty, or an API version other than 7, 8 or 9:
    /// refused whatever the body, with the cause for the log.
    Invalid(String),
}

/// Types whose bodies are JSON. Elasticsearch also reads smile, cbor and
/// yaml; snapvault parses JSON only and refuses those like any other
/// unsupported type.
const JSON_TYPES: &[&str] = &["application/json", "application/x-ndjson", "application/*"];
/// The versioned types of the official clients (`compatible-with=8`).
const VENDOR_JSON_TYPES: &[&str] = &[
    "application/vnd.elasticsearch+json",
    "application/vnd.elasticsearch+x-ndjson",
];

/// Judges the values of every `Content-Type` header of a request.
pub fn judge(values: &[&[u8]]) -> Verdict {
    let raw = match values {
        [] => return Verdict::Missing,
        [one] => match std::str::from_utf8(one) {
            Ok(v) => v,
            Err(_) => return Verdict::Invalid("header [Content-Type] is not UTF-8".into()),
        },
        _ => {
            return Verdict::Invalid(
                "Incorrect header [Content-Type]. Only one value should be provided".into(),
            )
        }
    };
    if raw.trim().is_empty() {
        return Verdict::Invalid("Header [Content-Type] cannot be empty.".into());
    }
    // Elasticsearch treats a list or `*/*` as no usable type at all.
    if raw.contains(',') || raw.trim() == "*/*" {
        return Verdict::Unsupported(raw.to_string());
    }
    let lower = raw.to_ascii_lowercase();
    let mut elements = lower.split(';');
    let essence = elements.next().unwrap_or_default();
    let valid_essence = essence
        .split_once('/')
        .is_some_and(|(t, s)| is_token(t.trim()) && is_token(s.trim()));
    if !valid_essence {
        return Verdict::Invalid(format!("invalid media-type [{raw}]"));
    }
    let essence: String = essence.chars().filter(|c| !c.is_whitespace()).collect();
    let mut version = None;
    for param in elements
        .map(|p| p.trim_start())
        .filter(|p| !p.trim().is_empty())
    {
        let (name, value) = match param.split_once('=') {
            Some((n, v))
                if !n.is_empty()
                    && !v.is_empty()
                    && !v.contains('=')
                    && !n.ends_with(char::is_whitespace)
                    && !v.starts_with(char::is_whitespace) =>
            {
                (n, v.trim_end())
            }
            _ => return Verdict::Invalid(format!("invalid parameters for header [{raw}]")),
        };
        if name == "compatible-with" {
            version = Some(value);
        }
    }
    if VENDOR_JSON_TYPES.contains(&essence.as_str()) {
        return match version {
            None | Some("7") | Some("8") | Some("9") => Verdict::Json,
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => Verdict::Invalid(format!(
                "Content-Type version must be either version 9, 8 or 7, but found {v}. Content-Type={raw}"
            )),
            Some(_) => Verdict::Unsupported(raw.to_string()),
        };
    }
    if JSON_TYPES.contains(&essence.as_str()) {
        Verdict::Json
    } else {
        Verdict::Unsupported(raw.to_string())
    }
}

/// RFC 7230 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Verdict {
        judge(&[v.as_bytes()])
    }

    #[test]
    fn json_types_with_parameters_are_json() {
        for v in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=utf-8",
            "application/x-ndjson",
            "application/vnd.elasticsearch+json; compatible-with=8",
            "application/vnd.elasticsearch+x-ndjson;compatible-with=7",
            "application/vnd.elasticsearch+json",
        ] {
            assert_eq!(one(v), Verdict::Json, "{v}");
        }
    }

    #[test]
    fn browser_safelisted_and_other_types_are_unsupported() {
        for v in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/smile",
            "application/cbor",
            "*/*",
            "application/json, text/plain",
        ] {
            assert_eq!(one(v), Verdict::Unsupported(v.to_string()), "{v}");
        }
        assert_eq!(judge(&[]), Verdict::Missing);
    }

    #[test]
    fn the_clients_of_elasticsearch_7_8_and_9_are_understood() {
        for v in ["7", "8", "9"] {
            let t = format!("application/vnd.elasticsearch+json; compatible-with={v}");
            assert_eq!(one(&t), Verdict::Json, "{t}");
        }
    }

    #[test]
    fn malformed_repeated_or_future_versions_are_invalid() {
        for v in [
            "json",
            "application/",
            "app lication/json",
            "application/json; charset",
            "application/json; charset =utf-8",
            "application/json; charset= utf-8",
            "application/vnd.elasticsearch+json; compatible-with=6",
            "application/vnd.elasticsearch+json; compatible-with=10",
            "",
        ] {
            assert!(matches!(one(v), Verdict::Invalid(_)), "{v}");
        }
        assert!(matches!(
            judge(&[b"application/json", b"application/json"]),
            Verdict::Invalid(_)
        ));
    }
}
