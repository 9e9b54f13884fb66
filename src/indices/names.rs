//! Index names and index expressions, following Elasticsearch's rules.

/// Why a name is not a valid index name (Elasticsearch's wording).
pub fn validate_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name != name.to_lowercase() {
        return Err("must be lowercase".into());
    }
    if name == "." || name == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if name.starts_with(['_', '-', '+']) {
        return Err("must not start with '_', '-', or '+'".into());
    }
    for c in ['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'] {
        if name.contains(c) {
            return Err(format!(
                "must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?, #, :] (found [{c}])"
            ));
        }
    }
    if name.len() > 255 {
        return Err("index name is too long, (> 255)".into());
    }
    Ok(())
}

/// Matches `name` against a simple wildcard pattern (`*` only, like ES).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| rec(&p[1..], &n[i..])),
            Some(c) => n.first() == Some(c) && rec(&p[1..], &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// The result of resolving an expression such as `logs-*,-logs-old,metrics`.
#[derive(Debug, PartialEq)]
pub struct Resolved {
    pub names: Vec<String>,
    /// Concrete names (no wildcard) that matched nothing.
    pub missing: Vec<String>,
}

/// Resolves a comma-separated expression against `available`, in the order
/// of `available`. `_all`, `*` and an empty expression select everything; a
/// `-pattern` after an inclusion excludes.
pub fn resolve(expr: &str, available: &[String]) -> Resolved {
    let parts: Vec<&str> = expr
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut selected: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    if parts.is_empty() || parts == ["_all"] {
        return Resolved {
            names: available.to_vec(),
            missing,
        };
    }
    for (i, part) in parts.iter().enumerate() {
        if let Some(ex) = part.strip_prefix('-').filter(|_| i > 0) {
            selected.retain(|n| !wildcard_match(ex, n));
        } else if *part == "_all" || part.contains('*') {
            for n in available {
                if (*part == "_all" || wildcard_match(part, n)) && !selected.contains(n) {
                    selected.push(n.clone());
                }
            }
        } else if available.iter().any(|n| n == part) {
            if !selected.iter().any(|n| n == part) {
                selected.push(part.to_string());
            }
        } else {
            missing.push(part.to_string());
        }
    }
    let order = |n: &String| available.iter().position(|a| a == n).unwrap_or(usize::MAX);
    selected.sort_by_key(order);
    Resolved {
        names: selected,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_elasticsearch_rules() {
        assert!(validate_index_name("logs-2026.11").is_ok());
        assert!(validate_index_name("Logs")
            .unwrap_err()
            .contains("lowercase"));
        assert!(validate_index_name("_x").is_err());
        assert!(validate_index_name("a/b").is_err());
        assert!(validate_index_name("..").is_err());
        assert!(validate_index_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn expressions_resolve_with_wildcards_and_exclusions() {
        let all: Vec<String> = ["a1", "a2", "b1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(resolve("a*", &all).names, vec!["a1", "a2"]);
        assert_eq!(resolve("*,-a2", &all).names, vec!["a1", "b1"]);
        assert_eq!(resolve("b1,a1", &all).names, vec!["a1", "b1"]);
        assert_eq!(resolve("_all", &all).names.len(), 3);
        let r = resolve("a1,zz", &all);
        assert_eq!(r.missing, vec!["zz"]);
        assert!(resolve("c*", &all).names.is_empty());
    }
}
