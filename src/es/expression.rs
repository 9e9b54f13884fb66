//! Name expressions, as Elasticsearch's `IndexNameExpressionResolver`
//! reads them for indices, snapshots and repositories: comma-separated
//! parts, `*` wildcards ([`glob`]), `_all`, and `-pattern` exclusions after
//! an inclusion (`logs-*,-logs-old,metrics`). An expression is bounded
//! ([`check_expression`]) before anything is matched, so the work of
//! resolving one is linear in the names it is matched to. What a valid
//! name is, is [`super::names`]'s business.

use std::collections::HashSet;

use super::{glob, Error};

/// Longest name expression (`a,b*,-c`) a request may carry, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most comma-separated parts in one name expression.
pub const MAX_EXPRESSION_PARTS: usize = 1024;

/// Checks a name expression against [`MAX_EXPRESSION_BYTES`] and
/// [`MAX_EXPRESSION_PARTS`] before anything matches it: the work of
/// resolving it is then bounded by the size of the names it is matched to.
pub fn check_expression(expr: &str) -> Result<(), Error> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(Error::TooLarge {
            what: "name expression",
            found: expr.len(),
            limit: MAX_EXPRESSION_BYTES,
            unit: "bytes",
        });
    }
    let parts = expr.split(',').count();
    if parts > MAX_EXPRESSION_PARTS {
        return Err(Error::TooLarge {
            what: "name expression",
            found: parts,
            limit: MAX_EXPRESSION_PARTS,
            unit: "comma-separated parts",
        });
    }
    Ok(())
}

/// The result of resolving an expression such as `logs-*,-logs-old,metrics`.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    pub names: Vec<String>,
    /// Concrete names (no wildcard) that matched nothing.
    pub missing: Vec<String>,
}

/// Resolves a comma-separated expression against `available`, in the order
/// of `available`. `_all`, `*` and an empty expression select everything; a
/// `-pattern` after an inclusion excludes. An expression past the bounds of
/// [`check_expression`] is refused before anything is matched.
pub fn resolve(expr: &str, available: &[String]) -> Result<Resolved, Error> {
    check_expression(expr)?;
    let parts: Vec<&str> = expr
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() || parts == ["_all"] {
        return Ok(Resolved {
            names: available.to_vec(),
            missing: Vec::new(),
        });
    }
    let known: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut selected: HashSet<&str> = HashSet::new();
    let mut missing = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(ex) = part.strip_prefix('-').filter(|_| i > 0) {
            selected.retain(|n| !glob::matches(ex, n));
        } else if *part == "_all" {
            selected.extend(known.iter().copied());
        } else if part.contains('*') {
            selected.extend(known.iter().copied().filter(|n| glob::matches(part, n)));
        } else if known.contains(part) {
            selected.insert(part);
        } else {
            missing.push(part.to_string());
        }
    }
    let names = available
        .iter()
        .filter(|n| selected.remove(n.as_str()))
        .cloned()
        .collect();
    Ok(Resolved { names, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_bounded() {
        assert!(check_expression("a,b*,-c").is_ok());
        assert!(check_expression(&"a".repeat(MAX_EXPRESSION_BYTES)).is_ok());
        assert!(check_expression(&"a".repeat(MAX_EXPRESSION_BYTES + 1)).is_err());
        assert!(check_expression(&vec!["a"; MAX_EXPRESSION_PARTS].join(",")).is_ok());
        let e = check_expression(&vec!["a"; MAX_EXPRESSION_PARTS + 1].join(",")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "name expression is too large: 1025 > 1024 comma-separated parts"
        );
    }

    #[test]
    fn expressions_resolve_with_wildcards_and_exclusions() {
        let all: Vec<String> = ["a1", "a2", "b1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(resolve("a*", &all).unwrap().names, vec!["a1", "a2"]);
        assert_eq!(resolve("*,-a2", &all).unwrap().names, vec!["a1", "b1"]);
        assert_eq!(resolve("b1,a1", &all).unwrap().names, vec!["a1", "b1"]);
        assert_eq!(
            resolve("b1,b*,_all", &all).unwrap().names,
            vec!["a1", "a2", "b1"]
        );
        assert_eq!(resolve("_all", &all).unwrap().names.len(), 3);
        let r = resolve("a1,zz", &all).unwrap();
        assert_eq!(r.missing, vec!["zz"]);
        assert!(resolve("c*", &all).unwrap().names.is_empty());
    }

    #[test]
    fn expressions_past_the_bounds_are_refused() {
        let all: Vec<String> = vec!["a".into()];
        let many = vec!["a"; MAX_EXPRESSION_PARTS + 1].join(",");
        assert!(resolve(&many, &all).is_err());
        let long = "a".repeat(MAX_EXPRESSION_BYTES + 1);
        assert!(resolve(&long, &all).is_err());
    }
}
