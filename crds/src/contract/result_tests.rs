use super::*;
use crate::types::status::Failure;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn pushed() -> BuildResult {
    BuildResult {
        source: Some(BuiltSource::Git {
            commit: "ab".repeat(20),
        }),
        steps: vec![
            StepTiming {
                index: 0,
                cached: true,
                duration_millis: 3,
            },
            StepTiming {
                index: 1,
                cached: false,
                duration_millis: 5120,
            },
        ],
        ..BuildResult::pushed(PushedImage {
            manifest_digest: digest('1'),
            config_digest: digest('2'),
            size: 2_893_034,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        })
    }
}

fn failed(message: &str, steps: u32) -> BuildResult {
    BuildResult {
        source: Some(BuiltSource::Url {
            sha256: "cd".repeat(32),
        }),
        steps: (0..steps)
            .map(|i| StepTiming {
                index: i,
                cached: i % 3 == 0,
                duration_millis: 1_000_000 + u64::from(i) * 7919 % 100_000,
            })
            .collect(),
        ..BuildResult::failed(BuildFailure {
            reason: FailureReason::StepFailed,
            message: message.into(),
            step: Some("RUN make -j8 all".into()),
            step_index: steps.checked_sub(1),
            line: Some(12),
            exit_code: Some(2),
        })
    }
}

#[test]
fn golden_success_message() {
    let message = pushed().encode();
    assert_eq!(
        message,
        concat!(
            "STRATUM-RESULT/1 312 71f2a0c1\n",
            r#"{"v":1,"ok":{"m":"sha256:1111111111111111111111111111111111111111111111111111111111111111","#,
            r#""c":"sha256:2222222222222222222222222222222222222222222222222222222222222222","z":2893034,"#,
            r#""t":"application/vnd.oci.image.manifest.v1+json"},"src":{"g":"abababababababababababababababababababab"},"#,
            r#""st":[[0,1,3],[1,0,5120]]}"#
        )
    );
    assert_eq!(parse_termination_message(&message).unwrap(), pushed());
}

#[test]
fn failures_round_trip() {
    let result = failed(
        "The command '/bin/sh -c make -j8 all' returned a non-zero code: 2",
        5,
    );
    assert_eq!(parse_termination_message(&result.encode()).unwrap(), result);
    let Outcome::Failed(failure) = &result.outcome else {
        unreachable!()
    };
    assert_eq!(
        Failure::from(failure),
        Failure {
            reason: "StepFailed".into(),
            message: failure.message.clone(),
            step: Some("RUN make -j8 all".into()),
            line: Some(12),
            exit_code: Some(2),
        }
    );
    let source = result.resolved_source().unwrap();
    assert_eq!(
        source.url.unwrap().sha256.as_deref(),
        Some("cd".repeat(32).as_str())
    );
}

#[test]
fn a_trailing_newline_is_accepted() {
    let message = format!("{}\n", pushed().encode());
    assert_eq!(parse_termination_message(&message).unwrap(), pushed());
}

/// The kubelet cuts messages without telling anyone: every proper prefix must be refused, and
/// refused as truncated.
#[test]
fn truncation_at_every_byte_is_detected() {
    let message = failed(&"x".repeat(2000), 200).encode();
    assert!(message.len() > 2500, "the test needs a large message");
    for cut in 0..message.len() {
        let Some(prefix) = message.get(..cut) else {
            continue;
        };
        match parse_termination_message(prefix) {
            Err(ResultError::Empty) => assert_eq!(cut, 0),
            Err(ResultError::Truncated { got, .. }) => assert_eq!(got, cut),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn corruption_at_every_byte_is_detected() {
    let message = pushed().encode();
    let bytes = message.as_bytes();
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x20, 0x04] {
            let mut corrupt = bytes.to_vec();
            corrupt[at] ^= flip;
            let Ok(text) = String::from_utf8(corrupt) else {
                continue;
            };
            assert!(
                parse_termination_message(&text).is_err(),
                "byte {at} ^ {flip:#x} was accepted"
            );
        }
    }
}

fn reframe(json: &str, version: u32) -> String {
    format!(
        "STRATUM-RESULT/{version} {} {:08x}\n{json}",
        json.len(),
        crc32::crc32(json.as_bytes())
    )
}

type Expect = fn(&ResultError) -> bool;

#[test]
fn well_framed_but_wrong_payloads_are_refused() {
    let d = digest('a');
    let t = "application/vnd.oci.image.manifest.v1+json";
    let cases: Vec<(String, Expect)> = vec![
        (
            reframe(
                &format!(r#"{{"v":1,"ok":{{"m":"{d}","c":"{d}","z":1,"t":"{t}"}}}}"#),
                2,
            ),
            |e| matches!(e, ResultError::Version { found: 2 }),
        ),
        (
            reframe(
                &format!(r#"{{"v":2,"ok":{{"m":"{d}","c":"{d}","z":1,"t":"{t}"}}}}"#),
                1,
            ),
            |e| matches!(e, ResultError::Version { found: 2 }),
        ),
        (
            reframe(
                &format!(r#"{{"v":1,"ok":{{"m":"sha256:00","c":"{d}","z":1,"t":"{t}"}}}}"#),
                1,
            ),
            malformed,
        ),
        (
            reframe(
                &format!(r#"{{"v":1,"ok":{{"m":"{d}","c":"{d}","z":1,"t":"a b"}}}}"#),
                1,
            ),
            malformed,
        ),
        (reframe(r#"{"v":1}"#, 1), malformed),
        (
            reframe(
                &format!(
                    r#"{{"v":1,"ok":{{"m":"{d}","c":"{d}","z":1,"t":"{t}"}},"err":{{"r":"StepFailed","m":""}}}}"#
                ),
                1,
            ),
            malformed,
        ),
        (
            reframe(r#"{"v":1,"err":{"r":"Gremlins","m":""}}"#, 1),
            malformed,
        ),
        (
            reframe(r#"{"v":1,"err":{"r":"StepFailed","m":""},"extra":1}"#, 1),
            malformed,
        ),
        (
            reframe(
                r#"{"v":1,"err":{"r":"StepFailed","m":""},"src":{"g":"main"}}"#,
                1,
            ),
            malformed,
        ),
        (
            reframe(
                r#"{"v":1,"err":{"r":"StepFailed","m":""},"st":[[1,0,5],[0,0,5]]}"#,
                1,
            ),
            malformed,
        ),
        (
            reframe(
                r#"{"v":1,"err":{"r":"StepFailed","m":""},"st":[[0,2,5]]}"#,
                1,
            ),
            malformed,
        ),
        (
            reframe(r#"{"v":1,"err":{"r":"StepFailed","m":""},"om":[1,2,5]}"#, 1),
            malformed,
        ),
        (
            format!(
                "{}garbage",
                reframe(r#"{"v":1,"err":{"r":"StepFailed","m":""}}"#, 1)
            ),
            malformed,
        ),
        ("Error: exec format error".into(), malformed),
        ("STRATUM-RESULT/x 1 00000000\n{}".into(), malformed),
        ("STRATUM-RESULT/1 2 0000000\n{}".into(), malformed),
        ("STRATUM-RESULT/1 2 00000000\n{}".into(), |e| {
            matches!(e, ResultError::Checksum { .. })
        }),
    ];
    for (message, expected) in cases {
        let err = parse_termination_message(&message).expect_err(&message);
        assert!(expected(&err), "{message}: unexpected {err:?}");
    }
    let ok = reframe(r#"{"v":1,"err":{"r":"BuilderError","m":"boom"}}"#, 1);
    assert!(parse_termination_message(&ok).is_ok());
}

fn malformed(e: &ResultError) -> bool {
    matches!(e, ResultError::Malformed { .. })
}

#[test]
fn error_reasons() {
    let truncated = ResultError::Truncated {
        expected: None,
        got: 1,
    };
    assert_eq!(truncated.reason(), crate::reason::RESULT_TRUNCATED);
    assert_eq!(ResultError::Empty.reason(), crate::reason::RESULT_INVALID);
    assert_eq!(
        ResultError::Checksum {
            expected: 1,
            actual: 2
        }
        .reason(),
        crate::reason::RESULT_INVALID
    );
}

/// The worst case the builder can produce — a long message full of characters JSON escapes, a
/// long instruction, 200 steps — still fits the budget; the failed step and the slowest uncached
/// steps are kept, and the rest are counted exactly.
#[test]
fn worst_case_fits_the_budget() {
    let nasty = "\"\u{1}\\\n😀".repeat(2000);
    let mut result = failed(&nasty, 200);
    if let Outcome::Failed(f) = &mut result.outcome {
        f.step = Some(nasty.clone());
    }
    let message = result.encode();
    assert!(message.len() <= RESULT_BUDGET, "{} bytes", message.len());
    const { assert!(RESULT_BUDGET < 4096) };

    let parsed = parse_termination_message(&message).unwrap();
    let Outcome::Failed(f) = &parsed.outcome else {
        panic!("not a failure")
    };
    assert!(
        f.message.ends_with('…')
            && serde_json::to_string(&f.message).unwrap().len() - 2 <= MESSAGE_BUDGET
    );
    assert!(
        serde_json::to_string(f.step.as_ref().unwrap())
            .unwrap()
            .len()
            - 2
            <= INSTRUCTION_BUDGET
    );
    assert!(nasty.starts_with(f.message.trim_end_matches('…')));

    let kept = &parsed.steps;
    let omitted = parsed.omitted.expect("200 steps do not all fit");
    assert!(!kept.is_empty());
    assert_eq!(kept.len() as u32 + omitted.count, 200);
    assert!(
        kept.windows(2).all(|w| w[0].index < w[1].index),
        "kept steps stay in order"
    );
    assert!(
        kept.iter().any(|s| s.index == 199),
        "the failed step is kept"
    );

    let all = &result.steps;
    let kept_total: u64 = kept.iter().map(|s| s.duration_millis).sum();
    let total: u64 = all.iter().map(|s| s.duration_millis).sum();
    assert_eq!(kept_total + omitted.duration_millis, total);
    let cached_total = all.iter().filter(|s| s.cached).count() as u32;
    assert_eq!(
        kept.iter().filter(|s| s.cached).count() as u32 + omitted.cached,
        cached_total
    );

    // Apart from the failed step, no omitted uncached step was slower than a kept one.
    let slowest_omitted_uncached = all
        .iter()
        .filter(|s| !s.cached && !kept.contains(s))
        .map(|s| s.duration_millis)
        .max()
        .unwrap_or(0);
    let fastest_kept_uncached = kept
        .iter()
        .filter(|s| !s.cached && s.index != 199)
        .map(|s| s.duration_millis)
        .min()
        .unwrap();
    assert!(fastest_kept_uncached >= slowest_omitted_uncached);

    // One more step would not have fit: the budget is used, not wasted.
    assert!(
        message.len() > RESULT_BUDGET - 40,
        "{} bytes",
        message.len()
    );
}

#[test]
fn small_results_keep_every_step() {
    let result = failed("short", 20);
    let parsed = parse_termination_message(&result.encode()).unwrap();
    assert_eq!(parsed, result);
    assert_eq!(parsed.omitted, None);
    assert_eq!(parsed.steps_status().len(), 20);
}

#[test]
fn reasons_are_the_condition_reasons() {
    for reason in FailureReason::ALL {
        let json = serde_json::to_value(reason).unwrap();
        assert_eq!(json, reason.as_str());
    }
}
