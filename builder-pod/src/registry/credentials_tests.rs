use super::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic(user: &str, pass: &str) -> Credential {
    Credential::Basic {
        username: user.into(),
        password: Secret::new(pass),
    }
}

#[test]
fn reads_every_entry_form_and_normalises_keys() {
    let config = format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{hub}"}},
            "localhost:5000": {{"username": "u", "password": "p:with:colons"}},
            "http://insecure.example:8080/v2/": {{"auth": "{insecure}"}},
            "ghcr.io": {{"identitytoken": "refresh-me", "username": "x"}},
            "quay.io": {{"registrytoken": "bearer-me"}},
            "email-only.example": {{"email": "a@b"}}
        }}}}"#,
        hub = b64("hubuser:hubpass"),
        insecure = b64("i:j"),
    );
    let creds = Credentials::from_docker_config(config.as_bytes(), "test").unwrap();
    let table = [
        ("docker.io", basic("hubuser", "hubpass")),
        ("index.docker.io", basic("hubuser", "hubpass")),
        ("localhost:5000", basic("u", "p:with:colons")),
        ("insecure.example:8080", basic("i", "j")),
        (
            "ghcr.io",
            Credential::IdentityToken {
                username: Some("x".into()),
                token: Secret::new("refresh-me"),
            },
        ),
        (
            "quay.io",
            Credential::RegistryToken(Secret::new("bearer-me")),
        ),
        ("email-only.example", Credential::Anonymous),
        ("unknown.example", Credential::Anonymous),
    ];
    for (registry, expected) in table {
        assert_eq!(
            creds.for_registry(registry).unwrap(),
            expected,
            "{registry}"
        );
    }
}

#[test]
fn exact_docker_io_key_wins_over_aliases() {
    let config = format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{old}"}}, "docker.io": {{"auth": "{new}"}}}}}}"#,
        old = b64("old:old"),
        new = b64("new:new"),
    );
    let creds = Credentials::from_docker_config(config.as_bytes(), "t").unwrap();
    assert_eq!(
        creds.for_registry("docker.io").unwrap(),
        basic("new", "new")
    );
}

#[test]
fn bad_auth_fields_name_the_key_but_not_the_value() {
    let cases = [
        ("%%%not-base64%%%".to_owned(), "not valid base64"),
        (b64("no-colon-here"), "missing the ':'"),
    ];
    for (auth, reason) in &cases {
        let config = format!(r#"{{"auths": {{"reg.example": {{"auth": "{auth}"}}}}}}"#);
        let err =
            Credentials::from_docker_config(config.as_bytes(), "/run/secrets/push").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(*reason)
                && msg.contains("reg.example")
                && msg.contains("/run/secrets/push"),
            "{msg}"
        );
        assert!(
            !msg.contains(auth.as_str()) && !msg.contains("no-colon-here"),
            "{msg}"
        );
    }
}

#[test]
fn helpers_are_an_error_only_where_they_are_the_only_source() {
    let config = format!(
        r#"{{"auths": {{"a.example": {{"auth": "{a}"}}}}, "credHelpers": {{"a.example": "ecr-login", "b.example": "gcr"}}, "credsStore": "desktop"}}"#,
        a = b64("a:a"),
    );
    let creds = Credentials::from_docker_config(config.as_bytes(), "t").unwrap();
    assert_eq!(creds.for_registry("a.example").unwrap(), basic("a", "a"));
    let err = creds.for_registry("b.example").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperUnsupported { .. }),
        "{err}"
    );
    assert_eq!(
        creds.for_registry("c.example").unwrap(),
        Credential::Anonymous
    );
}

#[test]
fn legacy_and_malformed_files_are_rejected() {
    let legacy = format!(
        r#"{{"reg.example": {{"auth": "{}", "email": "x"}}}}"#,
        b64("a:b")
    );
    assert!(matches!(
        Credentials::from_docker_config(legacy.as_bytes(), "t"),
        Err(CredentialsError::LegacyFormat { .. })
    ));
    assert!(matches!(
        Credentials::from_docker_config(b"{\"auths\":", "t"),
        Err(CredentialsError::Json { .. })
    ));
    assert!(
        Credentials::from_docker_config(b"{}", "t")
            .unwrap()
            .for_registry("x")
            .is_ok()
    );
}

#[test]
fn debug_output_never_contains_secrets() {
    let mut creds = Credentials::anonymous();
    creds.insert("a.example", basic("alice", "hunter2-password"));
    creds.insert(
        "b.example",
        Credential::RegistryToken(Secret::new("tok-XYZZY")),
    );
    creds.insert(
        "c.example",
        Credential::IdentityToken {
            username: None,
            token: Secret::new("refresh-PLUGH"),
        },
    );
    let debug = format!("{creds:?} {:?}", creds.for_registry("a.example").unwrap());
    for secret in ["hunter2-password", "tok-XYZZY", "refresh-PLUGH"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("<redacted>"));
    assert_eq!(Secret::new("s3cr3t").to_string(), "<redacted>");
}

#[test]
fn key_normalisation() {
    let table = [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("http://localhost:5000", "localhost:5000"),
        ("https://ghcr.io/v2/", "ghcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
    ];
    for (key, expected) in table {
        assert_eq!(normalize_registry(key), expected, "{key}");
    }
}
