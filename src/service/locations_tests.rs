use super::*;

#[test]
fn bucket_names_follow_the_services_rules() {
    for ok in ["my-bucket", "snapvault-0123abcd", "a.b.c", "abc"] {
        assert!(check_bucket_name("s3", "bucket", ok).is_ok(), "{ok}");
    }
    for bad in [
        "2130706433:47312/",
        "localhost:47312/",
        "[::ffff:7f00:1]:47312/",
        "evil.example.com/",
        "a@b",
        "Upper",
        "ab",
        "-ab",
        "ab-",
        "a..b",
        "127.0.0.1",
        "a?b",
        "a#b",
    ] {
        assert!(check_bucket_name("s3", "bucket", bad).is_err(), "{bad}");
    }
    assert!(check_bucket_name("gcs", "bucket", "with_underscore").is_ok());
    assert!(check_bucket_name("azure", "container", "with.dot").is_err());
    assert!(check_bucket_name("azure", "container", "a--b").is_err());
}

#[test]
fn bucket_name_refusals_name_the_rule_broken() {
    for (kind, what, name, message) in [
        (
            "s3",
            "bucket",
            "ab",
            "invalid bucket name [ab]: must be 3 to 63 characters long",
        ),
        (
            "azure",
            "container",
            "with.dot",
            "invalid container name [with.dot]: use lowercase letters, digits and [-] only",
        ),
        (
            "s3",
            "bucket",
            "a\nb",
            "invalid bucket name [a\\nb]: use lowercase letters, digits and [-.] only",
        ),
        (
            "gcs",
            "bucket",
            "-ab",
            "invalid bucket name [-ab]: must start and end with a letter or a digit",
        ),
        (
            "s3",
            "bucket",
            "127.0.0.1",
            "invalid bucket name [127.0.0.1]: must not be an IP address",
        ),
    ] {
        let refused = check_bucket_name(kind, what, name).unwrap_err();
        assert_eq!(refused.to_string(), message);
    }
}

#[test]
fn a_missing_credential_is_named_and_no_present_one_is_shown() {
    let mut keystore = Keystore::default();
    let secret = "AKIA-SHOULD-NEVER-PRINT";
    keystore.set_setting("s3.client.default.access_key", secret.into());
    let settings = BTreeMap::from([("bucket".to_string(), "bkt".to_string())]);
    let e = s3_config(&keystore, &CloudClients::default(), &settings).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no credentials for s3 client [default]: set [s3.client.default.secret_key] in the keystore"
    );
    assert!(!format!("{e:?}").contains(secret));
    keystore.set_setting("s3.client.default.secret_key", secret.into());
    let c = s3_config(&keystore, &CloudClients::default(), &settings).unwrap();
    assert!(!format!("{:?}", Backend::S3(c)).contains(secret));
}

#[test]
fn base_paths_have_one_spelling() {
    let bp = |v: &str| base_path(&BTreeMap::from([("base_path".to_string(), v.to_string())]));
    assert_eq!(bp("/prod/snapshots/").unwrap(), "prod/snapshots");
    assert_eq!(bp("").unwrap(), "");
    assert_eq!(bp("/").unwrap(), "");
    for bad in ["q/../p", "a//b", "./a", "a/.", "a\\b", "a\nb"] {
        assert!(bp(bad).is_err(), "{bad}");
    }
}

#[test]
fn store_uris() {
    let (k, s) = parse_store_uri("/var/lib/snapvault/state").unwrap();
    assert_eq!(
        (k.as_str(), s["path"].as_str()),
        ("file", "/var/lib/snapvault/state")
    );
    let (k, s) = parse_store_uri("file:///srv/state").unwrap();
    assert_eq!((k.as_str(), s["path"].as_str()), ("file", "/srv/state"));
    let (k, s) = parse_store_uri(
        "s3://bucket/deploy/state/?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style_access=true",
    )
    .unwrap();
    assert_eq!(k, "s3");
    assert_eq!(s["bucket"], "bucket");
    assert_eq!(s["base_path"], "deploy/state");
    assert_eq!(s["endpoint"], "http://127.0.0.1:9000");
    assert_eq!(s["path_style_access"], "true");
    let (k, s) = parse_store_uri("azure://box?client=ops").unwrap();
    assert_eq!((k.as_str(), s["container"].as_str()), ("azure", "box"));
    assert!(!s.contains_key("base_path"));
    assert!(parse_store_uri("s3://b?secret_key=x")
        .unwrap_err()
        .to_string()
        .contains("unknown parameter [secret_key]"));
    assert!(parse_store_uri("ftp://x")
        .unwrap_err()
        .to_string()
        .contains("unsupported scheme"));
}
