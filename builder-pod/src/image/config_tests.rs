use super::*;

const DIFF: &str = "sha256:65014c70e84b6817fed4d8ed4fa5f2ee7a7c8e8c3a3ab0fd4b2cb06a4a4d9b35";

/// A config in the exact layout BuildKit writes (shape of docker.io/library/busybox's config,
/// plus every Docker-specific field), which must survive parse → serialise byte for byte.
fn buildkit_config() -> String {
    format!(
        concat!(
            r#"{{"architecture":"amd64","config":{{"User":"app","ExposedPorts":{{"80/tcp":{{}},"9000/udp":{{}}}},"#,
            r#""Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/bin/sh","-c"],"#,
            r#""Cmd":["echo a \u0026\u0026 echo \u003cb\u003e"],"Volumes":{{"/data":{{}}}},"WorkingDir":"/srv","#,
            r#""Labels":{{"a":"1","b":"2"}},"StopSignal":"SIGTERM","ArgsEscaped":true,"#,
            r#""Healthcheck":{{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3}},"#,
            r#""OnBuild":["RUN true"],"Shell":["/bin/bash","-c"]}},"#,
            r#""created":"2024-09-26T21:31:42Z","history":[{{"created":"2024-09-26T21:31:42Z","created_by":"BusyBox 1.37.0 (glibc), Debian 12"}},"#,
            r#"{{"created":"2024-09-26T21:31:42Z","created_by":"CMD [\"sh\"]","comment":"buildkit.dockerfile.v0","empty_layer":true}}],"#,
            r#""os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
        ),
        diff = DIFF
    )
}

#[test]
fn buildkit_config_round_trips_byte_for_byte() {
    let original = buildkit_config();
    let config = ImageConfig::parse(original.as_bytes()).unwrap();
    assert_eq!(config.config.cmd, vec!["echo a && echo <b>".to_owned()]);
    assert_eq!(
        config.config.healthcheck.as_ref().unwrap().interval,
        30_000_000_000
    );
    assert!(config.history[1].empty_layer);
    assert_eq!(
        config.rootfs.diff_ids,
        vec![DIFF.parse::<Digest>().unwrap()]
    );
    let bytes = config.serialize_as(MediaType::OciConfig).unwrap();
    assert_eq!(String::from_utf8(bytes.bytes.clone()).unwrap(), original);
    assert_eq!(
        bytes.digest,
        Digest::of(original.as_bytes()),
        "the image ID is the digest of these bytes"
    );
}

#[test]
fn a_minimal_config_serialises_like_go_omitempty() {
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..ImageConfig::default()
    };
    config.rootfs.diff_ids.push(DIFF.parse().unwrap());
    let json = String::from_utf8(json::to_vec(&config).unwrap()).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"architecture":"amd64","config":{{}},"os":"linux","rootfs":{{"type":"layers","diff_ids":["{DIFF}"]}}}}"#
        )
    );
}

#[test]
fn unknown_fields_of_a_pulled_config_survive_a_rewrite() {
    // A classic-builder (pre-BuildKit) config: extra top-level keys, Docker's `container_config`,
    // nulls, unknown keys in `config` and in history entries.
    let classic = format!(
        concat!(
            r#"{{"architecture":"amd64","config":{{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"#,
            r#""Env":["PATH=/bin"],"Cmd":null,"Image":"sha256:abc","Volumes":null,"Entrypoint":null,"OnBuild":null,"Labels":null,"StopTimeout":10}},"#,
            r##""container":"c0ffee","container_config":{{"Cmd":["/bin/sh","-c","#(nop) CMD [\"sh\"]"]}},"##,
            r#""created":"2016-01-01T00:00:00.000000001Z","docker_version":"1.13.1","#,
            r#""history":[{{"created":"2016-01-01T00:00:00Z","created_by":"/bin/sh","x-vendor":{{"k":[1,2]}}}}],"#,
            r#""os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"],"base_layer":"x"}},"vendor.key":true}}"#
        ),
        diff = DIFF
    );
    let config = ImageConfig::parse(classic.as_bytes()).unwrap();
    assert!(
        config.config.cmd.is_empty(),
        "null decodes as empty, like Go"
    );
    let rewritten = json::to_vec(&config).unwrap();
    let before: Value = serde_json::from_str(&classic).unwrap();
    let after: Value = serde_json::from_slice(&rewritten).unwrap();
    for key in [
        "container",
        "container_config",
        "docker_version",
        "vendor.key",
        "created",
    ] {
        assert_eq!(after[key], before[key], "{key}");
    }
    for key in [
        "Hostname",
        "Domainname",
        "AttachStdin",
        "Image",
        "StopTimeout",
    ] {
        assert_eq!(after["config"][key], before["config"][key], "config.{key}");
    }
    assert_eq!(
        after["history"][0]["x-vendor"],
        before["history"][0]["x-vendor"]
    );
    assert_eq!(after["rootfs"]["base_layer"], "x");
    // Null-valued known fields are dropped, exactly what Go's omitempty would write.
    assert!(after["config"].get("Cmd").is_none());
    // Keys are sorted at the top level, as Go's map marshalling does.
    let text = String::from_utf8(rewritten).unwrap();
    let positions: Vec<usize> = [
        "\"architecture\"",
        "\"config\"",
        "\"container\"",
        "\"container_config\"",
        "\"created\"",
        "\"docker_version\"",
        "\"history\"",
        "\"os\"",
        "\"rootfs\"",
        "\"vendor.key\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn malformed_and_incomplete_configs_are_rejected() {
    let full = buildkit_config();
    type Expect = fn(&ConfigError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (full[..full.len() - 3].to_owned(), |e| {
            matches!(e, ConfigError::Malformed(_))
        }),
        (
            full.replacen(r#""os":"linux","#, r#""os":"linux","os":"windows","#, 1),
            |e| matches!(e, ConfigError::Malformed(_)),
        ),
        (full.replacen(r#""architecture":"amd64","#, "", 1), |e| {
            matches!(e, ConfigError::Invalid(_))
        }),
        (full.replace(DIFF, "sha256:XYZ"), |e| {
            matches!(e, ConfigError::Invalid(_))
        }),
        (
            full.replacen(
                &format!(r#"["{DIFF}"]"#),
                &format!(r#"["{DIFF}","{DIFF}"]"#),
                1,
            ),
            |e| {
                matches!(
                    e,
                    ConfigError::HistoryMismatch {
                        diff_ids: 2,
                        layers: 1
                    }
                )
            },
        ),
    ];
    for (doc, expected) in cases {
        let err = ImageConfig::parse(doc.as_bytes()).unwrap_err();
        assert!(expected(&err), "{err}");
    }
}

#[test]
fn platform_comes_from_the_config() {
    let mut config = ImageConfig {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        ..Default::default()
    };
    assert_eq!(config.platform().to_string(), "linux/arm64/v8");
    config.variant.clear();
    assert!(Platform::linux_amd64() != config.platform());
}
