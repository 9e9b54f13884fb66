//! The one wildcard matcher: Elasticsearch's `*`-only globs (its
//! `Glob.globMatch`), for index, snapshot and repository names, `_cat`
//! patterns and `filter_path` segments. `*` matches any run of characters,
//! including none; every other character matches itself.
//!
//! It runs in time linear in the pattern and the name, whatever the pattern:
//! the pattern is split at `*`, the first piece must be a prefix, the last a
//! suffix, and the pieces between are found leftmost, in order, with
//! `str::find` (a two-way search, linear). Taking the leftmost occurrence is
//! always right for `*`-only globs: it leaves the most room for the pieces
//! after it. Backtracking, which this replaces, is exponential in the number
//! of `*` (`*a*a*a*a*a*a*b` against `a`×100 took 41 s).

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(name) = name.strip_prefix(first) else {
        return false;
    };
    // `rest` holds every piece after the first `*`; its last piece is the
    // suffix (empty when the pattern ends with `*`).
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    let Some(mut hay) = name.strip_suffix(last) else {
        return false;
    };
    for piece in middle.split('*').filter(|p| !p.is_empty()) {
        match hay.find(piece) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dynamic programming over characters: obviously right, quadratic.
    fn reference(pattern: &str, name: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        // m[i][j]: p[..i] matches n[..j]
        let mut m = vec![vec![false; n.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=n.len() {
                m[i][j] = if p[i - 1] == '*' {
                    m[i - 1][j] || (j > 0 && m[i][j - 1])
                } else {
                    j > 0 && m[i - 1][j - 1] && p[i - 1] == n[j - 1]
                };
            }
        }
        m[p.len()][n.len()]
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, alphabet: &[char], max_len: u64) -> String {
            let len = self.next() % (max_len + 1);
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn agrees_with_the_reference_on_generated_cases() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let names = ['a', 'b', 'é', '日'];
        let patterns = ['a', 'b', 'é', '日', '*', '*'];
        for _ in 0..200_000 {
            let p = g.string(&patterns, 8);
            let n = g.string(&names, 10);
            assert_eq!(matches(&p, &n), reference(&p, &n), "{p:?} against {n:?}");
        }
    }

    #[test]
    fn edge_cases() {
        for (p, n, want) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "", true),
            ("***", "abc", true),
            ("a**b", "ab", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("a*", "a", true),
            ("*a", "a", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("ab*ba", "aba", false),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("logs-*", "logs-2026.11", true),
            ("*-old", "logs-old", true),
            ("l*s-*1", "logs-2026.11", true),
            ("日*本", "日本", true),
            ("日*本", "日x本", true),
            ("é*", "e", false),
        ] {
            assert_eq!(matches(p, n), want, "{p:?} against {n:?}");
            assert_eq!(reference(p, n), want, "reference: {p:?} against {n:?}");
        }
    }

    #[test]
    fn backtracking_patterns_stay_fast() {
        let name = "a".repeat(100_000);
        let started = std::time::Instant::now();
        assert!(!matches("*a*a*a*a*a*a*b", &name));
        assert!(!matches(&"*a".repeat(2000), &"a".repeat(1999)));
        assert!(matches(&format!("{}*", "*a".repeat(2000)), &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
