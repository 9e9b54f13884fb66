//! The Prometheus text exposition (format 0.0.4) of one scrape: a registry
//! that every source adds its families to, encoded once.

use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A scrape's registry: every name gets the `snapvault_` prefix.
pub fn registry() -> Registry {
    Registry::with_prefix("snapvault")
}

/// The registry's families as exposition text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;

    /// One sample line, `name{label="value",...} number`, checked against
    /// the format: a metric name, label names, quoted values with `\\`,
    /// `\"` and `\n` escapes, one space, a number.
    fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        let mut chars = line.chars().peekable();
        let take_word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut w = String::new();
            while let Some(&c) = chars.peek().filter(|c| word(**c)) {
                w.push(c);
                chars.next();
            }
            w
        };
        let name = take_word(&mut chars);
        assert!(
            !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        let mut labels = Vec::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            while chars.peek() != Some(&'}') {
                let key = take_word(&mut chars);
                assert!(!key.is_empty() && !key.contains(':'), "{line}");
                assert_eq!(
                    (chars.next(), chars.next()),
                    (Some('='), Some('"')),
                    "{line}"
                );
                let mut value = String::new();
                loop {
                    match chars.next().expect("a closing quote") {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        c => value.push(c),
                    }
                }
                labels.push((key, value));
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            chars.next();
        }
        assert_eq!(chars.next(), Some(' '), "{line}");
        let value: String = chars.collect();
        let value = match value.as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a number in {line}")),
        };
        (name, labels, value)
    }

    #[test]
    fn the_exposition_is_prometheus_text_with_prefixed_names_and_escaped_labels() {
        let mut r = registry();
        let counter: Family<Vec<(String, String)>, Counter> = Family::default();
        counter
            .get_or_create(&vec![("repository".into(), "a \"q\" \\ b\nc".into())])
            .inc_by(3);
        r.register("things", "Things counted", counter);
        let h = Histogram::new([0.5, 1.0]);
        h.observe(0.7);
        r.register("took_seconds", "Time taken", h);
        let text = encode(&r);
        let mut samples = Vec::new();
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                typed.push(t.to_string());
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                assert!(!line.starts_with('#'), "{line}");
                samples.push(parse_sample(line));
            }
        }
        assert!(
            typed.contains(&"snapvault_things_total counter".into()),
            "{text}"
        );
        assert!(
            typed.contains(&"snapvault_took_seconds histogram".into()),
            "{text}"
        );
        let things = samples
            .iter()
            .find(|s| s.0 == "snapvault_things_total")
            .expect("counter sample");
        assert_eq!(
            things.1,
            vec![("repository".into(), "a \"q\" \\ b\nc".into())]
        );
        assert_eq!(things.2, 3.0);
        let buckets: Vec<_> = samples
            .iter()
            .filter(|s| s.0 == "snapvault_took_seconds_bucket")
            .map(|s| (s.1[0].1.clone(), s.2))
            .collect();
        assert_eq!(
            buckets,
            vec![("0.5".into(), 0.0), ("1".into(), 1.0), ("+Inf".into(), 1.0)]
        );
        assert!(samples
            .iter()
            .any(|s| s.0 == "snapvault_took_seconds_count" && s.2 == 1.0));
    }
}
