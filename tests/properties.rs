//! Property tests of the pure logic: callback parser, task id validation,
//! key layout and signature verification.

use std::time::{Duration, UNIX_EPOCH};

use mj_archive::callback::{Callback, CallbackError, CallbackLimits};
use mj_archive::keys::KeyLayout;
use mj_archive::secret::Secret;
use mj_archive::signature::{sign, SignatureError, SignatureVerifier, Tolerance};
use mj_archive::source_guard::{is_public, SourcePolicy};
use mj_archive::task_id::TaskId;
use proptest::prelude::*;

fn valid_task_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,128}".prop_filter("dot segments are invalid", |s| s != "." && s != "..")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Callback::parse(&body, CallbackLimits::default());
    }

    #[test]
    fn parser_never_panics_on_json_like_text(body in r#"[{}\[\]",:0-9a-zA-Z_ \\]{0,512}"#) {
        let _ = Callback::parse(body.as_bytes(), CallbackLimits::default());
    }

    #[test]
    fn parser_round_trips_generated_callbacks(
        code in prop_oneof![Just(200i64), Just(500i64), any::<i64>()],
        task_id in valid_task_id(),
        urls in proptest::collection::vec("https://cdn\\.example\\.com/[a-z0-9_/]{1,40}\\.(png|jpeg|webp)", 0..8),
        prompt in proptest::option::of(".{0,64}"),
        alias in any::<bool>(),
    ) {
        let field = if alias { "task_id" } else { "taskId" };
        let mut data = serde_json::json!({ field: task_id, "resultUrls": urls });
        if let Some(prompt) = &prompt {
            data["promptJson"] = serde_json::Value::String(prompt.clone());
        }
        let body = serde_json::json!({"code": code, "msg": "m", "data": data, "unknown": [1, 2]});

        let callback = Callback::parse(body.to_string().as_bytes(), CallbackLimits::default()).unwrap();
        prop_assert_eq!(callback.code, code);
        prop_assert_eq!(callback.task_id.as_str(), task_id.as_str());
        prop_assert_eq!(&callback.result_urls, &urls);
        prop_assert_eq!(callback.is_success(), code == 200);
        prop_assert_eq!(&callback.prompt_json, &prompt);
    }

    #[test]
    fn parser_rejects_any_invalid_task_id(task_id in ".{0,140}") {
        let body = serde_json::json!({"code": 200, "data": {"taskId": task_id}});
        let result = Callback::parse(body.to_string().as_bytes(), CallbackLimits::default());

        match TaskId::parse(&task_id) {
            Ok(_) => prop_assert!(result.is_ok()),
            Err(expected) => prop_assert!(matches!(result, Err(CallbackError::InvalidTaskId(e)) if e == expected)),
        }
    }

    #[test]
    fn task_id_accepts_exactly_the_documented_set(value in ".{0,140}") {
        let documented = (1..=128).contains(&value.chars().count())
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && value != "."
            && value != "..";

        prop_assert_eq!(TaskId::parse(&value).is_ok(), documented);
    }

    #[test]
    fn keys_stay_under_task_dir(
        prefix in "([a-z0-9 +_-]{1,12}/){0,3}",
        task_id in valid_task_id(),
        index in 0usize..10_000,
        ext in "[a-z0-9]{1,5}",
    ) {
        let layout = KeyLayout::new(&prefix).unwrap();
        let id = TaskId::parse(&task_id).unwrap();
        let dir = format!("{prefix}{task_id}/");

        for key in [layout.callback_key(&id), layout.manifest_key(&id), layout.result_key(&id, index, &ext)] {
            prop_assert!(key.starts_with(&dir));
            prop_assert!(!key[dir.len()..].contains('/'));
            prop_assert!(!key.split('/').any(|segment| segment == ".." || segment == "."));
        }
        prop_assert_eq!(layout.task_id_of_callback_key(&layout.callback_key(&id)), Some(id.clone()));
        prop_assert_eq!(layout.task_id_of_callback_key(&layout.manifest_key(&id)), None);
        prop_assert_eq!(layout.task_id_of_callback_key(&layout.result_key(&id, index, &ext)), None);
    }

    #[test]
    fn signature_verifies_only_its_own_inputs(
        key in "[ -~]{1,64}",
        task_id in valid_task_id(),
        timestamp in 1_000_000_000u64..4_000_000_000,
        skew in -1800i64..=300,
        other_task in valid_task_id(),
    ) {
        let secret = Secret::new(key.clone());
        let verifier = SignatureVerifier::new(secret.clone(), Tolerance::default());
        let signature = sign(&secret, &task_id, timestamp);
        let now = UNIX_EPOCH + Duration::from_secs(timestamp.saturating_add_signed(-skew));
        let ts = timestamp.to_string();

        prop_assert_eq!(verifier.verify(&task_id, Some(&ts), Some(&signature), now), Ok(()));
        if other_task != task_id {
            prop_assert_eq!(
                verifier.verify(&other_task, Some(&ts), Some(&signature), now),
                Err(SignatureError::Mismatch)
            );
        }
        let other_key = SignatureVerifier::new(Secret::new(format!("{key}x")), Tolerance::default());
        prop_assert_eq!(
            other_key.verify(&task_id, Some(&ts), Some(&signature), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_window_is_exact(offset in -100_000i64..100_000) {
        let secret = Secret::new("k");
        let verifier = SignatureVerifier::new(secret.clone(), Tolerance::default());
        let timestamp = 1_700_000_000u64;
        let signature = sign(&secret, "t", timestamp);
        let now = UNIX_EPOCH + Duration::from_secs(timestamp.saturating_add_signed(offset));

        let result = verifier.verify("t", Some("1700000000"), Some(&signature), now);
        let inside = (-300..=1800).contains(&offset);
        prop_assert_eq!(result.is_ok(), inside);
        if offset > 1800 {
            prop_assert!(matches!(result, Err(SignatureError::Expired { .. })), "expected Expired");
        }
        if offset < -300 {
            prop_assert!(matches!(result, Err(SignatureError::InFuture { .. })), "expected InFuture");
        }
    }

    #[test]
    fn guard_never_passes_a_non_public_ipv4_literal(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
        let ip = std::net::Ipv4Addr::new(a, b, c, d);
        let decimal = u32::from(ip);
        let policy = SourcePolicy::default();

        for url in [format!("https://{ip}/x.png"), format!("https://{decimal}/x.png"), format!("https://[::ffff:{ip}]/x.png")] {
            let result = policy.check_url(&url);
            prop_assert_eq!(result.is_ok(), is_public(ip.into()), "{}", url);
        }
    }
}
