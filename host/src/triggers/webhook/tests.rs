use super::*;
use axum::http::HeaderValue;
use serde_json::json;

const KEY: &[u8] = b"It's a Secret to Everybody";
const NOW: i64 = 1_700_000_000;

fn trigger(scheme: Scheme) -> WebhookTrigger {
    WebhookTrigger {
        scheme,
        secret: "HOOK_KEY".into(),
        header: None,
        prefix: None,
        tolerance: None,
        delivery_id_header: None,
        input_pointer: None,
        signal: None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn github_documented_vector() {
    assert_eq!(
        sign_github(KEY, b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn github_good_bad_missing_malformed() {
    let t = trigger(Scheme::Github);
    let body = b"Hello, World!";
    let good = sign_github(KEY, body);
    let h = headers(&[("X-Hub-Signature-256", &good)]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW),
        Ok(Verified { delivery_id: None })
    );
    // Upper-case hex is the same tag.
    let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
    let h = headers(&[("X-Hub-Signature-256", &upper)]);
    assert!(verify(&t, KEY, &h, body, NOW).is_ok());

    let h = headers(&[("X-Hub-Signature-256", &good)]);
    assert_eq!(
        verify(&t, b"wrong key", &h, body, NOW),
        Err(Rejection::BadSignature)
    );
    assert_eq!(
        verify(&t, KEY, &h, b"Hello, World?", NOW),
        Err(Rejection::BadSignature)
    );
    assert_eq!(
        verify(&t, KEY, &HeaderMap::new(), body, NOW),
        Err(Rejection::MissingSignature)
    );
    for bad in [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=zz",
        "sha256=7571",
    ] {
        let h = headers(&[("X-Hub-Signature-256", bad)]);
        let err = verify(&t, KEY, &h, body, NOW).unwrap_err();
        assert!(matches!(err, Rejection::Malformed(_)), "{bad}: {err:?}");
        assert_eq!(err.reason(), "malformed_signature");
    }
    // Two signature headers: ambiguous, refused.
    let h = headers(&[
        ("X-Hub-Signature-256", &good),
        ("X-Hub-Signature-256", &good),
    ]);
    assert!(matches!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::Malformed(_))
    ));
}

#[test]
fn github_delivery_id_from_default_and_configured_header() {
    let body = b"{}";
    let sig = sign_github(KEY, body);
    let t = trigger(Scheme::Github);
    let h = headers(&[
        ("X-Hub-Signature-256", &sig),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW)
            .unwrap()
            .delivery_id
            .as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let mut t2 = t.clone();
    t2.delivery_id_header = Some("X-Request-Id".into());
    assert_eq!(verify(&t2, KEY, &h, body, NOW).unwrap().delivery_id, None);
    let h = headers(&[("X-Hub-Signature-256", &sig), ("x-request-id", "abc")]);
    assert_eq!(
        verify(&t2, KEY, &h, body, NOW)
            .unwrap()
            .delivery_id
            .as_deref(),
        Some("abc")
    );

    let long = "a".repeat(257);
    let h = headers(&[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", &long)]);
    assert!(matches!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::Malformed(_))
    ));
    let h = headers(&[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", "a\tb")]);
    assert!(matches!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::Malformed(_))
    ));
    let ok = "a".repeat(256);
    let h = headers(&[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", &ok)]);
    assert!(verify(&t, KEY, &h, body, NOW).is_ok());
}

#[test]
fn stripe_good_bad_missing_malformed() {
    let t = trigger(Scheme::Stripe);
    let body = br#"{"id":"evt_123","type":"invoice.paid"}"#;
    let h = headers(&[("Stripe-Signature", &sign_stripe(KEY, body, NOW))]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW),
        Ok(Verified {
            delivery_id: Some("evt_123".into())
        })
    );
    assert_eq!(
        verify(&t, b"other", &h, body, NOW),
        Err(Rejection::BadSignature)
    );
    // The timestamp is signed: moving it breaks the signature.
    let forged =
        sign_stripe(KEY, body, NOW).replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    let h = headers(&[("Stripe-Signature", &forged)]);
    assert_eq!(verify(&t, KEY, &h, body, NOW), Err(Rejection::BadSignature));
    assert_eq!(
        verify(&t, KEY, &HeaderMap::new(), body, NOW),
        Err(Rejection::MissingSignature)
    );
    let v1 = hmac_hex(KEY, &[NOW.to_string().as_bytes(), b".", body]);
    for bad in [
        format!("v1={v1}"),
        format!("t={NOW}"),
        format!("t={NOW},v0={v1}"),
        format!("t=soon,v1={v1}"),
        format!("t=-5,v1={v1}"),
        format!("t={NOW},t={NOW},v1={v1}"),
        format!("t={NOW},v1=xyz"),
        format!("t={NOW};v1={v1}"),
        "garbage".to_string(),
    ] {
        let h = headers(&[("Stripe-Signature", &bad)]);
        let err = verify(&t, KEY, &h, body, NOW).unwrap_err();
        assert!(matches!(err, Rejection::Malformed(_)), "{bad}: {err:?}");
    }
    // Unknown schemes alongside a good v1 are ignored.
    let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={v1},v0=abc"))]);
    assert!(verify(&t, KEY, &h, body, NOW).is_ok());
}

#[test]
fn stripe_tolerance() {
    let mut t = trigger(Scheme::Stripe);
    let body = b"{}";
    let sig = |at: i64| headers(&[("Stripe-Signature", &sign_stripe(KEY, body, at))]);
    assert!(verify(&t, KEY, &sig(NOW - 300), body, NOW).is_ok());
    assert!(verify(&t, KEY, &sig(NOW + 300), body, NOW).is_ok());
    let err = verify(&t, KEY, &sig(NOW - 301), body, NOW).unwrap_err();
    assert_eq!(err, Rejection::Stale { age_secs: 301 });
    assert_eq!(err.reason(), "stale_timestamp");
    assert_eq!(
        verify(&t, KEY, &sig(NOW + 301), body, NOW),
        Err(Rejection::Stale { age_secs: -301 })
    );
    // A stale timestamp with a bad signature is a bad signature.
    assert_eq!(
        verify(&t, b"other", &sig(NOW - 301), body, NOW),
        Err(Rejection::BadSignature)
    );
    t.tolerance = Some(Duration::from_secs(10));
    assert!(verify(&t, KEY, &sig(NOW - 10), body, NOW).is_ok());
    assert_eq!(
        verify(&t, KEY, &sig(NOW - 11), body, NOW),
        Err(Rejection::Stale { age_secs: 11 })
    );
    // Far-off timestamps do not overflow.
    let h = headers(&[(
        "Stripe-Signature",
        &sign_stripe(KEY, body, 9_000_000_000_000_000_000),
    )]);
    assert!(matches!(
        verify(&t, KEY, &h, body, i64::MIN),
        Err(Rejection::Stale { .. })
    ));
}

#[test]
fn stripe_multiple_v1_any_matches() {
    let t = trigger(Scheme::Stripe);
    let body = b"{}";
    let good = hmac_hex(KEY, &[NOW.to_string().as_bytes(), b".", body]);
    let old = hmac_hex(
        b"rotated-out key",
        &[NOW.to_string().as_bytes(), b".", body],
    );
    for value in [
        format!("t={NOW},v1={old},v1={good}"),
        format!("t={NOW},v1={good},v1={old}"),
        format!("v1={old}, t={NOW}, v1={good}"),
    ] {
        let h = headers(&[("Stripe-Signature", &value)]);
        assert!(verify(&t, KEY, &h, body, NOW).is_ok(), "{value}");
    }
    let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={old},v1={old}"))]);
    assert_eq!(verify(&t, KEY, &h, body, NOW), Err(Rejection::BadSignature));
}

#[test]
fn stripe_delivery_id() {
    let t = trigger(Scheme::Stripe);
    let check = |body: &[u8]| {
        let h = headers(&[("Stripe-Signature", &sign_stripe(KEY, body, NOW))]);
        verify(&t, KEY, &h, body, NOW).map(|v| v.delivery_id)
    };
    assert_eq!(
        check(br#"{"id":"evt_1","data":{"id":"x"}}"#),
        Ok(Some("evt_1".into()))
    );
    assert_eq!(check(br#"{"id":42}"#), Ok(None));
    assert_eq!(check(br#"{"data":{"id":"x"}}"#), Ok(None));
    assert_eq!(check(br#"["evt_1"]"#), Ok(None));
    assert_eq!(check(b" \n {\"id\":\"evt_2\"}"), Ok(Some("evt_2".into())));
    assert_eq!(check(b"not json"), Ok(None));
    assert!(matches!(
        check(br#"{"id":"evt\n1"}"#),
        Err(Rejection::Malformed(_))
    ));
    let long = format!(r#"{{"id":"{}"}}"#, "e".repeat(300));
    assert!(matches!(
        check(long.as_bytes()),
        Err(Rejection::Malformed(_))
    ));

    // A configured header wins over the payload.
    let mut t = t.clone();
    t.delivery_id_header = Some("Idempotency-Key".into());
    let body = br#"{"id":"evt_1"}"#;
    let h = headers(&[
        ("Stripe-Signature", &sign_stripe(KEY, body, NOW)),
        ("Idempotency-Key", "k-9"),
    ]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW)
            .unwrap()
            .delivery_id
            .as_deref(),
        Some("k-9")
    );
}

#[test]
fn hmac_default_and_custom_header_prefix() {
    let body = b"payload";
    let t = trigger(Scheme::Hmac);
    let h = headers(&[("X-Signature", &sign_hmac(KEY, body, ""))]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW),
        Ok(Verified { delivery_id: None })
    );
    let upper = sign_hmac(KEY, body, "").to_uppercase();
    let h = headers(&[("X-Signature", &upper)]);
    assert!(verify(&t, KEY, &h, body, NOW).is_ok());
    assert_eq!(
        verify(&t, b"nope", &h, body, NOW),
        Err(Rejection::BadSignature)
    );
    assert_eq!(
        verify(&t, KEY, &HeaderMap::new(), body, NOW),
        Err(Rejection::MissingSignature)
    );
    let h = headers(&[("X-Signature", "not-hex")]);
    assert!(matches!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::Malformed(_))
    ));

    let mut t = trigger(Scheme::Hmac);
    t.header = Some("X-Acme-Signature".into());
    t.prefix = Some("sha256=".into());
    t.delivery_id_header = Some("X-Acme-Delivery".into());
    let sig = sign_hmac(KEY, body, "sha256=");
    assert!(sig.starts_with("sha256="));
    let h = headers(&[("x-acme-signature", &sig), ("X-Acme-Delivery", "d-1")]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW),
        Ok(Verified {
            delivery_id: Some("d-1".into())
        })
    );
    // The default header no longer counts.
    let h = headers(&[("X-Signature", &sig)]);
    assert_eq!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::MissingSignature)
    );
    // Missing prefix.
    let h = headers(&[("X-Acme-Signature", &sign_hmac(KEY, body, ""))]);
    assert!(matches!(
        verify(&t, KEY, &h, body, NOW),
        Err(Rejection::Malformed(_))
    ));
}

#[test]
fn rejection_messages_leak_nothing() {
    let key = b"super-secret-key";
    let body = b"confidential body";
    for scheme in [Scheme::Github, Scheme::Stripe, Scheme::Hmac] {
        let t = trigger(scheme);
        for value in [
            "sha256=zz",
            "t=1,v1=zz",
            "zz",
            "t=x",
            &sign_github(b"k", body),
        ] {
            let h = headers(&[
                ("X-Hub-Signature-256", value),
                ("Stripe-Signature", value),
                ("X-Signature", value),
            ]);
            if let Err(e) = verify(&t, key, &h, body, NOW) {
                let msg = e.to_string();
                assert!(!msg.contains("super-secret"), "{msg}");
                assert!(!msg.contains("confidential"), "{msg}");
            }
        }
    }
    assert_eq!(Rejection::MissingSignature.reason(), "missing_signature");
    assert_eq!(Rejection::BadSignature.reason(), "bad_signature");
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    triggers: Triggers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Triggers {
    webhook: WebhookTrigger,
}

fn parse(src: &str) -> Result<WebhookTrigger, String> {
    toml::from_str::<Doc>(src)
        .map(|d| d.triggers.webhook)
        .map_err(|e| e.to_string())
}

#[test]
fn manifest_full_example() {
    let w = parse(
        r#"
        [triggers.webhook]
        scheme = "stripe"
        secret = "STRIPE_HOOK_KEY"
        tolerance = "5m"
        delivery_id_header = "Idempotency-Key"
        input_pointer = "/data"
        [triggers.webhook.signal]
        name = "approve"
        correlation_pointer = "/pr/id"
        input_pointer = "/pr_id"
        "#,
    )
    .unwrap();
    assert_eq!(
        w,
        WebhookTrigger {
            scheme: Scheme::Stripe,
            secret: "STRIPE_HOOK_KEY".into(),
            header: None,
            prefix: None,
            tolerance: Some(Duration::from_secs(300)),
            delivery_id_header: Some("Idempotency-Key".into()),
            input_pointer: Some("/data".into()),
            signal: Some(SignalRoute {
                name: "approve".into(),
                correlation_pointer: "/pr/id".into(),
                input_pointer: "/pr_id".into(),
            }),
        }
    );
    w.validate().unwrap();

    let w = parse(
        r#"
        [triggers.webhook]
        scheme = "hmac"
        secret = "ACME_KEY"
        header = "X-Acme-Signature"
        prefix = "sha256="
        "#,
    )
    .unwrap();
    assert_eq!(w.scheme, Scheme::Hmac);
    assert_eq!(w.header.as_deref(), Some("X-Acme-Signature"));
    assert_eq!(w.prefix.as_deref(), Some("sha256="));
    w.validate().unwrap();

    let w =
        parse("[triggers.webhook]\nscheme = \"github\"\nsecret = \"GITHUB_HOOK_KEY\"\n").unwrap();
    assert_eq!(w, {
        let mut t = trigger(Scheme::Github);
        t.secret = "GITHUB_HOOK_KEY".into();
        t
    });
    w.validate().unwrap();
}

#[test]
fn manifest_typos_rejected() {
    for (src, needle) in [
        (
            "[triggers.webhook]\nscheme = \"github\"\nsecret = \"K\"\nsecrett = \"K\"\n",
            "secrett",
        ),
        (
            "[triggers.webhook]\nscheme = \"gitlab\"\nsecret = \"K\"\n",
            "gitlab",
        ),
        (
            "[triggers.webhook]\nscheme = \"Github\"\nsecret = \"K\"\n",
            "Github",
        ),
        ("[triggers.webhook]\nscheme = \"github\"\n", "secret"),
        (
            "[triggers.webhook]\nscheme = \"stripe\"\nsecret = \"K\"\ntolerance = \"5 parsecs\"\n",
            "tolerance",
        ),
        (
            "[triggers.webhook]\nscheme = \"stripe\"\nsecret = \"K\"\ntolerance = 300\n",
            "tolerance",
        ),
        (
            "[triggers.webhook]\nscheme = \"github\"\nsecret = \"K\"\n[triggers.webhook.signal]\nname = \"a\"\ncorrelation_pointer = \"/a\"\ninput_pointer = \"/a\"\ncorrelation = \"/b\"\n",
            "correlation",
        ),
        (
            "[triggers.webhook]\nscheme = \"github\"\nsecret = \"K\"\n[triggers.webhook.signal]\nname = \"a\"\n",
            "correlation_pointer",
        ),
    ] {
        let err = parse(src).unwrap_err();
        assert!(err.contains(needle), "{src}\n=> {err}");
    }
}

#[test]
fn validate_errors() {
    let ok = trigger(Scheme::Hmac);
    ok.validate().unwrap();
    let cases: Vec<(WebhookTrigger, &str)> = vec![
        (
            {
                let mut t = ok.clone();
                t.secret = "".into();
                t
            },
            "triggers.webhook.secret:",
        ),
        (
            {
                let mut t = ok.clone();
                t.secret = "1KEY".into();
                t
            },
            "triggers.webhook.secret:",
        ),
        (
            {
                let mut t = ok.clone();
                t.secret = "MY-KEY".into();
                t
            },
            "triggers.webhook.secret:",
        ),
        (
            {
                let mut t = ok.clone();
                t.secret = "K".repeat(129);
                t
            },
            "triggers.webhook.secret:",
        ),
        (
            {
                let mut t = ok.clone();
                t.header = Some("X Sig".into());
                t
            },
            "triggers.webhook.header:",
        ),
        (
            {
                let mut t = ok.clone();
                t.header = Some("".into());
                t
            },
            "triggers.webhook.header:",
        ),
        (
            {
                let mut t = ok.clone();
                t.delivery_id_header = Some("X:Id".into());
                t
            },
            "triggers.webhook.delivery_id_header:",
        ),
        (
            {
                let mut t = ok.clone();
                t.input_pointer = Some("data".into());
                t
            },
            "triggers.webhook.input_pointer:",
        ),
        (
            {
                let mut t = trigger(Scheme::Github);
                t.header = Some("X-Sig".into());
                t
            },
            "triggers.webhook.header:",
        ),
        (
            {
                let mut t = trigger(Scheme::Stripe);
                t.prefix = Some("".into());
                t
            },
            "triggers.webhook.prefix:",
        ),
        (
            {
                let mut t = ok.clone();
                t.tolerance = Some(Duration::from_secs(5));
                t
            },
            "triggers.webhook.tolerance:",
        ),
        (
            {
                let mut t = ok.clone();
                t.signal = Some(SignalRoute {
                    name: "".into(),
                    correlation_pointer: "/a".into(),
                    input_pointer: "/a".into(),
                });
                t
            },
            "triggers.webhook.signal.name:",
        ),
        (
            {
                let mut t = ok.clone();
                t.signal = Some(SignalRoute {
                    name: "n".repeat(129),
                    correlation_pointer: "/a".into(),
                    input_pointer: "/a".into(),
                });
                t
            },
            "triggers.webhook.signal.name:",
        ),
        (
            {
                let mut t = ok.clone();
                t.signal = Some(SignalRoute {
                    name: "go".into(),
                    correlation_pointer: "a".into(),
                    input_pointer: "/a".into(),
                });
                t
            },
            "triggers.webhook.signal.correlation_pointer:",
        ),
        (
            {
                let mut t = ok.clone();
                t.signal = Some(SignalRoute {
                    name: "go".into(),
                    correlation_pointer: "".into(),
                    input_pointer: "a".into(),
                });
                t
            },
            "triggers.webhook.signal.input_pointer:",
        ),
    ];
    for (t, prefix) in cases {
        let err = t.validate().unwrap_err();
        assert!(err.starts_with(prefix), "{t:?}\n=> {err}");
    }
    // Allowed combinations.
    let mut t = trigger(Scheme::Stripe);
    t.tolerance = Some(Duration::from_secs(60));
    t.delivery_id_header = Some("Idempotency-Key".into());
    t.input_pointer = Some("".into());
    t.signal = Some(SignalRoute {
        name: "n".repeat(128),
        correlation_pointer: "".into(),
        input_pointer: "/x".into(),
    });
    t.validate().unwrap();
}

#[test]
fn extract_pointer() {
    let v = json!({"data": {"n": 1}, "pr": {"id": 7}, "list": [10, 20]});
    assert_eq!(extract(&v, None), Some(v.clone()));
    assert_eq!(extract(&v, Some("")), Some(v.clone()));
    assert_eq!(extract(&v, Some("/data")), Some(json!({"n": 1})));
    assert_eq!(extract(&v, Some("/pr/id")), Some(json!(7)));
    assert_eq!(extract(&v, Some("/list/1")), Some(json!(20)));
    assert_eq!(extract(&v, Some("/missing")), None);
    assert_eq!(extract(&v, Some("data")), None);
}
