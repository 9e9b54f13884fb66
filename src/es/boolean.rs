//! Elasticsearch booleans in settings: exactly `true` or `false`
//! (its `Booleans.parseBoolean`), never `yes`, `1` or `TRUE`.

use super::Error;

/// `value` of setting `name` as a boolean.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::NotABoolean {
            setting: name.to_string(),
            value: value.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_and_false_are_booleans() {
        assert_eq!(parse_bool("compress", "true"), Ok(true));
        assert_eq!(parse_bool("compress", "false"), Ok(false));
        for v in ["TRUE", "yes", "1", ""] {
            assert_eq!(
                parse_bool("readonly", v).unwrap_err().to_string(),
                format!("Failed to parse value [{v}] as only [true] or [false] are allowed for setting [readonly]")
            );
        }
    }
}
