//! The receiver's library path on real Lambda event fixtures, against a real
//! S3-compatible server on 127.0.0.1.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use mj_archive::callback::CallbackLimits;
use mj_archive::config::{ReceiverConfig, StorageConfig};
use mj_archive::keys::KeyLayout;
use mj_archive::metrics::Metrics;
use mj_archive::receive::Receiver;
use mj_archive::secret::Secret;
use mj_archive::signature::{sign, Tolerance};
use mj_archive::store::Store;
use serde_json::{json, Value};
use support::s3::{Fault, S3Server};

const HMAC_KEY: &str = "test_webhook_hmac_key";
const SIGNED_AT: u64 = 1_700_000_000;

fn config(bucket: &str, hmac: bool, token: Option<&str>) -> ReceiverConfig {
    ReceiverConfig {
        storage: StorageConfig {
            bucket: bucket.to_owned(),
            layout: KeyLayout::new("midjourney/").unwrap(),
        },
        hmac_key: hmac.then(|| Secret::new(HMAC_KEY)),
        token: token.map(Secret::new),
        tolerance: Tolerance::default(),
        max_body_bytes: ReceiverConfig::DEFAULT_MAX_BODY_BYTES,
        limits: CallbackLimits::default(),
    }
}

fn receiver(s3: &S3Server, config: ReceiverConfig) -> Receiver {
    Receiver::new(
        Store::new(s3.client(), s3.bucket()),
        config,
        Metrics::disabled(),
    )
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string())
        .expect("fixture is an API Gateway or function URL event")
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("answer body is JSON")
}

/// Builds an HTTP API event carrying `body`, signed for `task_id` at `timestamp`.
fn signed_event(body: &Value, task_id: &str, timestamp: u64) -> Value {
    let mut event = fixture("apigw-http-success.json");
    event["body"] = json!(body.to_string());
    event["headers"]["content-length"] = json!(body.to_string().len().to_string());
    event["headers"]["x-webhook-timestamp"] = json!(timestamp.to_string());
    event["headers"]["x-webhook-signature"] =
        json!(sign(&Secret::new(HMAC_KEY), task_id, timestamp));
    event
}

#[tokio::test]
async fn http_api_callback_stored_byte_for_byte() {
    let s3 = S3Server::start().await;
    let event = fixture("apigw-http-success.json");

    let response = receiver(&s3, config(s3.bucket(), true, None))
        .handle_at(request(&event), at(SIGNED_AT))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        body_json(&response),
        json!({"status": "stored", "taskId": "mj_task_12345",
               "key": "midjourney/mj_task_12345/callback.json", "providerCode": 200})
    );
    let stored = s3
        .get_bytes("midjourney/mj_task_12345/callback.json")
        .await
        .unwrap();
    assert_eq!(stored, event["body"].as_str().unwrap().as_bytes());
    let head = s3
        .head("midjourney/mj_task_12345/callback.json")
        .await
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn duplicate_answered_200_and_changes_nothing() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), true, None));
    let original = fixture("apigw-http-success.json");
    receiver.handle_at(request(&original), at(SIGNED_AT)).await;

    let altered_body = json!({"code": 200, "msg": "success", "data": {
        "taskId": "mj_task_12345", "resultUrls": ["https://attacker.example/x.png"]}});
    let replay = signed_event(&altered_body, "mj_task_12345", SIGNED_AT);
    let response = receiver
        .handle_at(request(&replay), at(SIGNED_AT + 60))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_json(&response)["status"], "duplicate");
    let stored = s3
        .get_bytes("midjourney/mj_task_12345/callback.json")
        .await
        .unwrap();
    assert_eq!(stored, original["body"].as_str().unwrap().as_bytes());
}

#[tokio::test]
async fn base64_body_decoded_before_storing() {
    let s3 = S3Server::start().await;
    let event = fixture("apigw-http-base64.json");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(event["body"].as_str().unwrap())
        .unwrap();

    let response = receiver(&s3, config(s3.bucket(), true, None))
        .handle_at(request(&event), at(SIGNED_AT))
        .await;

    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&response)
    );
    assert_eq!(
        s3.get_bytes("midjourney/mj_task_base64_1/callback.json")
            .await
            .unwrap(),
        decoded
    );
}

#[tokio::test]
async fn rest_api_and_function_url_events_accepted() {
    let s3 = S3Server::start().await;

    let rest = receiver(&s3, config(s3.bucket(), true, None))
        .handle_at(request(&fixture("apigw-rest-success.json")), at(SIGNED_AT))
        .await;
    assert_eq!(rest.status(), StatusCode::OK, "{:?}", body_json(&rest));

    let url = receiver(&s3, config(s3.bucket(), false, Some("example-token")))
        .handle_at(
            request(&fixture("function-url-success.json")),
            at(SIGNED_AT),
        )
        .await;
    assert_eq!(url.status(), StatusCode::OK, "{:?}", body_json(&url));
    assert_eq!(body_json(&url)["taskId"], "mj_task_alias_1");
    assert!(s3
        .get_bytes("midjourney/mj_task_alias_1/callback.json")
        .await
        .is_some());
}

#[tokio::test]
async fn failure_callback_stored_with_200() {
    let s3 = S3Server::start().await;

    let response = receiver(&s3, config(s3.bucket(), true, None))
        .handle_at(request(&fixture("apigw-http-failure.json")), at(SIGNED_AT))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_json(&response)["providerCode"], 500);
    assert!(s3
        .get_bytes("midjourney/mj_task_failed_1/callback.json")
        .await
        .is_some());
}

#[tokio::test]
async fn other_methods_get_405() {
    let s3 = S3Server::start().await;

    let response = receiver(&s3, config(s3.bucket(), false, None))
        .handle_at(request(&fixture("apigw-http-get.json")), at(SIGNED_AT))
        .await;

    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(body_json(&response)["error"], "method_not_allowed");
    assert_eq!(
        s3.write_requests().len(),
        1,
        "only the bucket creation wrote"
    );
}

#[tokio::test]
async fn token_checks() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), false, Some("right-token")));
    let mut event = fixture("function-url-success.json");

    let wrong = receiver.handle_at(request(&event), at(SIGNED_AT)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body_json(&wrong)["message"],
        "invalid token query parameter"
    );

    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = Value::Null;
    let missing = receiver.handle_at(request(&event), at(SIGNED_AT)).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(body_json(&missing)["message"]
        .as_str()
        .unwrap()
        .starts_with("missing token"));
    assert_eq!(s3.write_requests().len(), 1, "nothing stored");
}

#[tokio::test]
async fn token_and_signature_both_required() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), true, Some("right-token")));
    let body = json!({"code": 200, "data": {"taskId": "mj_both", "resultUrls": []}});
    let mut event = signed_event(&body, "mj_both", SIGNED_AT);

    let no_token = receiver.handle_at(request(&event), at(SIGNED_AT)).await;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    event["rawQueryString"] = json!("token=right-token");
    event["queryStringParameters"] = json!({"token": "right-token"});
    let both = receiver.handle_at(request(&event), at(SIGNED_AT)).await;
    assert_eq!(both.status(), StatusCode::OK, "{:?}", body_json(&both));

    let body = json!({"code": 200, "data": {"taskId": "mj_both_2", "resultUrls": []}});
    let mut unsigned = signed_event(&body, "mj_both_2", SIGNED_AT);
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-webhook-signature");
    unsigned["rawQueryString"] = json!("token=right-token");
    unsigned["queryStringParameters"] = json!({"token": "right-token"});
    let token_only = receiver.handle_at(request(&unsigned), at(SIGNED_AT)).await;
    assert_eq!(token_only.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signature_failures_get_401_and_store_nothing() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), true, None));
    let body = json!({"code": 200, "data": {"taskId": "mj_sig", "resultUrls": []}});

    let cases: Vec<(Value, SystemTime, &str)> = vec![
        (
            signed_event(&body, "mj_other", SIGNED_AT),
            at(SIGNED_AT),
            "does not match",
        ),
        (
            signed_event(&body, "mj_sig", SIGNED_AT),
            at(SIGNED_AT + 1801),
            "s old, the maximum is 1800 s",
        ),
        (
            signed_event(&body, "mj_sig", SIGNED_AT),
            at(SIGNED_AT - 301),
            "in the future",
        ),
        (
            {
                let mut e = signed_event(&body, "mj_sig", SIGNED_AT);
                e["headers"]
                    .as_object_mut()
                    .unwrap()
                    .remove("x-webhook-timestamp");
                e
            },
            at(SIGNED_AT),
            "missing X-Webhook-Timestamp",
        ),
        (
            {
                let mut e = signed_event(&body, "mj_sig", SIGNED_AT);
                e["headers"]
                    .as_object_mut()
                    .unwrap()
                    .remove("x-webhook-signature");
                e
            },
            at(SIGNED_AT),
            "missing X-Webhook-Signature",
        ),
    ];
    for (event, now, expected) in cases {
        let response = receiver.handle_at(request(&event), now).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{expected}");
        let message = body_json(&response)["message"].as_str().unwrap().to_owned();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains(HMAC_KEY));
    }
    assert_eq!(s3.write_requests().len(), 1, "nothing stored");
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), false, None));

    for (body, expected) in [
        ("{not json", "not a valid provider callback"),
        (
            r#"{"code":200,"data":{"taskId":"../etc"}}"#,
            "invalid taskId",
        ),
        (
            r#"{"code":200,"data":{"taskId":".."}}"#,
            "relative path segment",
        ),
        (
            r#"{"code":"200","data":{"taskId":"t"}}"#,
            "not a valid provider callback",
        ),
    ] {
        let mut event = fixture("apigw-http-success.json");
        event["body"] = json!(body);
        let response = receiver.handle_at(request(&event), at(SIGNED_AT)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer = body_json(&response);
        assert_eq!(answer["error"], "invalid_callback");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    assert_eq!(s3.write_requests().len(), 1, "nothing stored");
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let s3 = S3Server::start().await;
    let mut config = config(s3.bucket(), false, None);
    config.max_body_bytes = 1024;
    let mut event = fixture("apigw-http-success.json");
    event["body"] = json!(format!(
        r#"{{"code":200,"data":{{"taskId":"t","pad":"{}"}}}}"#,
        "x".repeat(2000)
    ));

    let response = receiver(&s3, config)
        .handle_at(request(&event), at(SIGNED_AT))
        .await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_json(&response)["error"], "body_too_large");
}

#[tokio::test]
async fn s3_failure_answers_5xx_and_claims_nothing() {
    let s3 = S3Server::start().await;
    let receiver = receiver(&s3, config(s3.bucket(), true, None));
    let event = fixture("apigw-http-success.json");

    for fault in [
        Fault::ServiceUnavailable,
        Fault::InternalError,
        Fault::CloseConnection,
    ] {
        s3.set_fault(fault);
        let response = receiver.handle_at(request(&event), at(SIGNED_AT)).await;

        assert!(
            response.status().is_server_error(),
            "{fault:?}: {}",
            response.status()
        );
        assert_eq!(body_json(&response)["error"], "storage_unavailable");
    }
    assert_eq!(
        receiver
            .handle_at(request(&event), at(SIGNED_AT))
            .await
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    s3.set_fault(Fault::None);
    assert!(s3
        .get_bytes("midjourney/mj_task_12345/callback.json")
        .await
        .is_none());
    let retried = receiver.handle_at(request(&event), at(SIGNED_AT)).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(body_json(&retried)["status"], "stored");
}
