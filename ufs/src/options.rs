//! Mount options and secrets. Options carry credentials; anything that leaves the master for
//! display (CLI, web UI, logs) goes through [`redact_options`].

use std::collections::BTreeMap;

pub const REDACTED: &str = "******";

/// Whether an option's value is a credential that must never be shown or logged.
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "credential",
        "private_key",
        "delegation",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A copy of the options with secret values replaced by [`REDACTED`].
pub fn redact_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_option(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut o = BTreeMap::new();
        o.insert("secret_access_key".to_string(), "abc".to_string());
        o.insert("access_key_id".to_string(), "AK".to_string());
        o.insert("session_token".to_string(), "t".to_string());
        let r = redact_options(&o);
        assert_eq!(r["secret_access_key"], REDACTED);
        assert_eq!(r["session_token"], REDACTED);
        assert_eq!(r["access_key_id"], "AK");
    }
}
