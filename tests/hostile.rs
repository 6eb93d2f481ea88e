//! Hostile input: malformed callbacks, refused result URLs, wrong content
//! types and malformed events. Each case has its exact receiver status,
//! manifest entry or event error, no refused source gets a request, and no
//! write lands outside `{KEY_PREFIX}{taskId}/`.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use mj_archive::archive::Archiver;
use mj_archive::archiver_event::{handle_event, EventError, EventSummary};
use mj_archive::callback::CallbackLimits;
use mj_archive::config::{ReceiverConfig, RetryConfig, StorageConfig, TransferConfig};
use mj_archive::keys::KeyLayout;
use mj_archive::manifest::{ArchiveStatus, FailureKind};
use mj_archive::metrics::Metrics;
use mj_archive::receive::Receiver;
use mj_archive::s3_event::EventKeyError;
use mj_archive::signature::Tolerance;
use mj_archive::source_guard::SourcePolicy;
use mj_archive::store::Store;
use mj_archive::task_id::TaskId;
use serde_json::{json, Value};
use support::origin::Origin;
use support::process::{ChildGuard, ARCHIVER_BIN, RECEIVER_BIN};
use support::runtime_api::{lambda_env, Invocation, RuntimeApi};
use support::s3::S3Server;
use support::{data, sha256_hex};
use tokio::time::Instant;

const PREFIX: &str = "midjourney/";
const MAX_BODY: usize = ReceiverConfig::DEFAULT_MAX_BODY_BYTES;

fn receiver(s3: &S3Server) -> Receiver {
    let config = ReceiverConfig {
        storage: StorageConfig {
            bucket: s3.bucket().to_owned(),
            layout: KeyLayout::new(PREFIX).unwrap(),
        },
        hmac_key: None,
        token: None,
        tolerance: Tolerance::default(),
        max_body_bytes: MAX_BODY,
        limits: CallbackLimits::default(),
    };
    Receiver::new(
        Store::new(s3.client(), s3.bucket()),
        config,
        Metrics::disabled(),
    )
}

fn archiver(s3: &S3Server, sources: SourcePolicy) -> Archiver {
    let transfer = TransferConfig {
        part_size: 5 * 1024 * 1024,
        retry: RetryConfig {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        },
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        deadline_margin: Duration::from_millis(200),
        ..TransferConfig::default()
    };
    Archiver::new(
        Store::new(s3.client(), s3.bucket()),
        KeyLayout::new(PREFIX).unwrap(),
        CallbackLimits::default(),
        transfer,
        sources,
        None,
        Metrics::disabled(),
    )
    .unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Builds an unsigned API Gateway HTTP API event with `body`. Bytes that are
/// not UTF-8 are sent base64-encoded, as API Gateway does for binary bodies.
fn http_event(method: &str, body: &[u8]) -> Value {
    let mut event = fixture("apigw-http-success.json");
    event["requestContext"]["http"]["method"] = json!(method);
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("x-webhook-signature");
    headers.remove("x-webhook-timestamp");
    headers.insert("content-length".into(), json!(body.len().to_string()));
    match std::str::from_utf8(body) {
        Ok(text) => {
            event["body"] = json!(text);
            event["isBase64Encoded"] = json!(false);
        }
        Err(_) => {
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
            event["isBase64Encoded"] = json!(true);
        }
    }
    event
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("response body is JSON")
}

/// Builds a success callback with any JSON as `taskId` and `resultUrls`.
fn callback_body(task_id: Value, urls: Value) -> Vec<u8> {
    json!({"code": 200, "msg": "success", "data": {"taskId": task_id, "resultUrls": urls}})
        .to_string()
        .into_bytes()
}

/// Builds a valid callback of exactly `len` bytes, padded in an unknown field.
fn padded_body(task_id: &str, len: usize) -> Vec<u8> {
    let body = |pad: usize| {
        json!({"code": 200, "data": {"taskId": task_id, "pad": "p".repeat(pad)}})
            .to_string()
            .into_bytes()
    };
    let body = body(len - body(0).len());
    assert_eq!(body.len(), len);
    body
}

fn task_body(task_id: &str) -> Vec<u8> {
    callback_body(json!(task_id), json!([]))
}

/// One request to the receiver and the expected response: the status and
/// the `error` code, or `stored` / `duplicate` for a 200.
struct ReceiverCase {
    name: String,
    method: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    answer: &'static str,
}

fn case(name: impl Into<String>, body: impl Into<Vec<u8>>, status: u16) -> ReceiverCase {
    let status = StatusCode::from_u16(status).unwrap();
    let answer = match status.as_u16() {
        200 => "stored",
        400 => "invalid_callback",
        405 => "method_not_allowed",
        413 => "body_too_large",
        other => panic!("no expected response code for status {other}"),
    };
    ReceiverCase {
        name: name.into(),
        method: "POST",
        body: body.into(),
        status,
        answer,
    }
}

fn receiver_cases(hostile_urls: &[String]) -> Vec<ReceiverCase> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let ten_thousand_urls: Vec<String> = (0..10_000).map(|i| format!("https://a.b/{i}")).collect();
    let sixty_five_urls: Vec<String> = (0..65).map(|i| format!("https://a.b/{i}")).collect();
    let sixty_four_urls: Vec<String> = (0..64).map(|i| format!("https://a.b/{i}")).collect();
    let long_url = format!("https://cdn.example.com/{}", "x".repeat(1001));
    let max_url = format!("https://cdn.example.com/{}", "x".repeat(1000));
    assert_eq!((long_url.len(), max_url.len()), (1025, 1024));

    let mut cases = vec![
        // Malformed and truncated JSON.
        case("empty body", "", 400),
        case("whitespace only", " \n\t", 400),
        case("lone brace", "{", 400),
        case(
            "truncated after a value",
            r#"{"code":200,"data":{"taskId":"mj_cut""#,
            400,
        ),
        case(
            "truncated inside a string",
            r#"{"code":200,"data":{"taskId":"mj_c"#,
            400,
        ),
        case(
            "trailing garbage",
            r#"{"code":200,"data":{"taskId":"mj_tail"}}x"#,
            400,
        ),
        case(
            "two documents",
            r#"{"code":200,"data":{"taskId":"a"}}{"code":200,"data":{"taskId":"b"}}"#,
            400,
        ),
        case("single quotes", "{'code':200,'data':{'taskId':'t'}}", 400),
        case(
            "trailing comma",
            r#"{"code":200,"data":{"taskId":"t",},}"#,
            400,
        ),
        case(
            "comment",
            r#"{"code":200,/* x */"data":{"taskId":"t"}}"#,
            400,
        ),
        case("deeply nested arrays", deep.clone(), 400),
        case(
            "deeply nested taskId",
            format!(r#"{{"code":200,"data":{{"taskId":{deep}}}}}"#),
            400,
        ),
        case(
            "deep nesting in an unknown field is skipped",
            format!(r#"{{"code":200,"data":{{"taskId":"mj_deep_extra","x":{deep}}}}}"#),
            200,
        ),
        case(
            "byte order mark",
            [b"\xef\xbb\xbf".as_slice(), &task_body("mj_bom")].concat(),
            400,
        ),
        case("invalid UTF-8", b"\xff\xfe\xfd".to_vec(), 400),
        case(
            "invalid UTF-8 inside taskId",
            b"{\"code\":200,\"data\":{\"taskId\":\"mj_\xff\"}}".to_vec(),
            400,
        ),
        case(
            "raw NUL byte",
            b"{\"code\":200,\0\"data\":{\"taskId\":\"t\"}}".to_vec(),
            400,
        ),
        case(
            "raw control character in a string",
            "{\"code\":200,\"data\":{\"taskId\":\"mj_\u{1}\"}}",
            400,
        ),
        // Wrong types and nulls.
        case("null", "null", 400),
        case("array", "[]", 400),
        case("string", r#""callback""#, 400),
        case("number", "123", 400),
        case(
            "code as string",
            r#"{"code":"200","data":{"taskId":"t"}}"#,
            400,
        ),
        case("code null", r#"{"code":null,"data":{"taskId":"t"}}"#, 400),
        case("code float", r#"{"code":200.5,"data":{"taskId":"t"}}"#, 400),
        case(
            "code beyond i64",
            r#"{"code":99999999999999999999,"data":{"taskId":"t"}}"#,
            400,
        ),
        case("code missing", r#"{"data":{"taskId":"t"}}"#, 400),
        case("data null", r#"{"code":200,"data":null}"#, 400),
        case("data array", r#"{"code":200,"data":[]}"#, 400),
        case("data missing", r#"{"code":200}"#, 400),
        case("taskId null", callback_body(Value::Null, json!([])), 400),
        case("taskId number", callback_body(json!(12345), json!([])), 400),
        case("taskId array", callback_body(json!(["t"]), json!([])), 400),
        case("taskId object", callback_body(json!({"id": "t"}), json!([])), 400),
        case(
            "resultUrls string",
            callback_body(json!("t"), json!("https://a.b/x.png")),
            400,
        ),
        case(
            "resultUrls with null",
            callback_body(json!("t"), json!([null])),
            400,
        ),
        case(
            "resultUrls with number",
            callback_body(json!("t"), json!([1])),
            400,
        ),
        case(
            "resultUrls nested",
            callback_body(json!("t"), json!([["https://a.b/x.png"]])),
            400,
        ),
        case("msg number", r#"{"code":200,"msg":5,"data":{"taskId":"t"}}"#, 400),
        case(
            "promptJson object",
            r#"{"code":200,"data":{"taskId":"t","promptJson":{"prompt":"x"}}}"#,
            400,
        ),
        case(
            "taskId and task_id both",
            r#"{"code":200,"data":{"taskId":"a","task_id":"b"}}"#,
            400,
        ),
        case(
            "resultUrls null is accepted",
            callback_body(json!("mj_null_urls"), Value::Null),
            200,
        ),
        case(
            "msg null is accepted",
            r#"{"code":200,"msg":null,"data":{"taskId":"mj_null_msg"}}"#,
            200,
        ),
        // Task ids that are not one safe key segment.
        case("taskId empty", task_body(""), 400),
        case("taskId ../x", task_body("../x"), 400),
        case("taskId a/b", task_body("a/b"), 400),
        case("taskId ..", task_body(".."), 400),
        case("taskId .", task_body("."), 400),
        case("taskId %2e%2e", task_body("%2e%2e"), 400),
        case("taskId %2F", task_body("a%2Fb"), 400),
        case("taskId backslash", task_body("a\\b"), 400),
        case("taskId ..\\..\\x", task_body("..\\..\\x"), 400),
        case("taskId NUL", task_body("mj\u{0}x"), 400),
        case("taskId newline", task_body("mj\nx"), 400),
        case("taskId DEL", task_body("mj\u{7f}x"), 400),
        case("taskId non-ASCII letter", task_body("t\u{e2}che"), 400),
        case("taskId right-to-left override", task_body("\u{202e}gpj"), 400),
        case("taskId fullwidth slash", task_body("mj\u{ff0f}x"), 400),
        case("taskId emoji", task_body("mj_\u{1f600}"), 400),
        case(
            "taskId lone surrogate escape",
            r#"{"code":200,"data":{"taskId":"mj_\ud800"}}"#,
            400,
        ),
        case("taskId leading space", task_body(" mj"), 400),
        case("taskId query", task_body("mj_task?x=1"), 400),
        case("taskId fragment", task_body("mj#x"), 400),
        case("taskId 129 characters", task_body(&"x".repeat(129)), 400),
        case(
            "taskId of 200,000 characters",
            task_body(&"x".repeat(200_000)),
            400,
        ),
        case("taskId 128 characters", task_body(&"m".repeat(128)), 200),
        case("taskId ..a", task_body("..a"), 200),
        // Sizes and counts.
        case(
            "body one byte over MAX_CALLBACK_BYTES",
            padded_body("mj_big_body", MAX_BODY + 1),
            413,
        ),
        case(
            "body of exactly MAX_CALLBACK_BYTES",
            padded_body("mj_max_body", MAX_BODY),
            200,
        ),
        case(
            "10,000 result URLs",
            callback_body(json!("mj_many"), json!(ten_thousand_urls)),
            400,
        ),
        case(
            "65 result URLs",
            callback_body(json!("mj_65"), json!(sixty_five_urls)),
            400,
        ),
        case(
            "64 result URLs",
            callback_body(json!("mj_64"), json!(sixty_four_urls)),
            200,
        ),
        case(
            "URL of 1025 bytes",
            callback_body(json!("mj_long_url"), json!([long_url])),
            400,
        ),
        case(
            "URL of 1024 bytes",
            callback_body(json!("mj_max_url"), json!([max_url])),
            200,
        ),
        case(
            "huge promptJson under the body limit",
            json!({"code": 200, "data": {"taskId": "mj_big_prompt", "promptJson": "p".repeat(200_000)}})
                .to_string(),
            200,
        ),
        // URLs are checked when fetched, so one bad URL does not lose the callback.
        case(
            "hostile result URLs are stored for the archiver",
            callback_body(json!("mj_hostile_urls"), json!(hostile_urls)),
            200,
        ),
    ];

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let mut wrong = case(format!("method {method}"), task_body("mj_method"), 405);
        wrong.method = method;
        cases.push(wrong);
    }

    let mut duplicate = case("duplicate delivery", task_body("mj_null_msg_dup"), 200);
    duplicate.body = br#"{"code":200,"msg":null,"data":{"taskId":"mj_null_msg"}}"#.to_vec();
    duplicate.answer = "duplicate";
    cases.push(duplicate);
    cases
}

/// A hostile result URL and the manifest entry it must get under a strict
/// policy: the failure kind and a fragment of the message naming the check.
fn hostile_url_cases(origin: &Origin) -> Vec<(String, FailureKind, &'static str)> {
    let port = origin.authority().rsplit_once(':').unwrap().1.to_owned();
    let png = "/files/docs-screenshot.png";
    let address = |host: &str| format!("https://{host}:{port}{png}");
    use FailureKind::{InvalidUrl, Refused};

    vec![
        ("not a url".into(), InvalidUrl, "invalid URL"),
        (String::new(), InvalidUrl, "invalid URL"),
        ("//cdn.example.com/x.png".into(), InvalidUrl, "invalid URL"),
        ("https://".into(), InvalidUrl, "invalid URL"),
        ("https://[::1".into(), InvalidUrl, "invalid URL"),
        ("file:///etc/passwd".into(), Refused, r#"scheme "file""#),
        (
            format!("ftp://127.0.0.1:{port}/x.png"),
            Refused,
            r#"scheme "ftp""#,
        ),
        (
            "data:image/png;base64,iVBORw0KGgo=".into(),
            Refused,
            r#"scheme "data""#,
        ),
        (
            "javascript:alert(1)".into(),
            Refused,
            r#"scheme "javascript""#,
        ),
        (
            format!("gopher://127.0.0.1:{port}/"),
            Refused,
            r#"scheme "gopher""#,
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            Refused,
            r#"scheme "http""#,
        ),
        (
            "https://169.254.169.254/latest/meta-data/".into(),
            Refused,
            "address 169.254.169.254 ",
        ),
        (
            "https://[::ffff:a9fe:a9fe]/latest/meta-data/".into(),
            Refused,
            "address ::ffff:169.254.169.254 ",
        ),
        (origin.url(png), Refused, r#"scheme "http""#),
        (
            format!("http://[::ffff:127.0.0.1]:{port}{png}"),
            Refused,
            r#"scheme "http""#,
        ),
        (
            address("[::ffff:127.0.0.1]"),
            Refused,
            "address ::ffff:127.0.0.1 ",
        ),
        (address("127.0.0.1"), Refused, "address 127.0.0.1 "),
        (address("2130706433"), Refused, "address 127.0.0.1 "),
        (address("0177.0.0.1"), Refused, "address 127.0.0.1 "),
        (address("0x7f.1"), Refused, "address 127.0.0.1 "),
        (address("127.1"), Refused, "address 127.0.0.1 "),
        (address("127.0.0.1."), Refused, "address 127.0.0.1 "),
        (address("%31%32%37.0.0.1"), Refused, "address 127.0.0.1 "),
        (address("[::1]"), Refused, "address ::1 "),
        (address("[::]"), Refused, "address :: "),
        (address("0.0.0.0"), Refused, "address 0.0.0.0 "),
        (
            address("localhost"),
            Refused,
            "of host localhost is not public",
        ),
        (
            "https://10.0.0.1/x.png".into(),
            Refused,
            "address 10.0.0.1 ",
        ),
        (
            "https://192.168.1.1/x.png".into(),
            Refused,
            "address 192.168.1.1 ",
        ),
        (
            "https://100.64.0.1/x.png".into(),
            Refused,
            "address 100.64.0.1 ",
        ),
        (
            "https://[fe80::1]/x.png".into(),
            Refused,
            "address fe80::1 ",
        ),
        (
            "https://[fc00::1]/x.png".into(),
            Refused,
            "address fc00::1 ",
        ),
        (
            "https://224.0.0.1/x.png".into(),
            Refused,
            "address 224.0.0.1 ",
        ),
        (
            "https://255.255.255.255/x.png".into(),
            Refused,
            "address 255.255.255.255 ",
        ),
        (
            "https://user:secret@cdn.example.com/x.png".into(),
            Refused,
            "user name or password",
        ),
        (
            "https://@cdn.example.com@127.0.0.1/x.png".into(),
            Refused,
            "user name or password",
        ),
        (
            origin.url("/redirect?to=http://169.254.169.254/latest/meta-data/"),
            Refused,
            r#"scheme "http""#,
        ),
        (
            address("127.0.0.1").replace(png, "/redirect?to=http://10.0.0.1/"),
            Refused,
            "address 127.0.0.1 ",
        ),
    ]
}

/// Content types and responses a CDN might send in place of an image, with
/// the manifest entry each must get. `Ok(ext)` means archived as `{index}.{ext}`.
fn content_type_cases(origin: &Origin) -> Vec<(String, Result<&'static str, FailureKind>)> {
    use FailureKind::{Empty, HttpStatus, NotMedia};
    let typed = |t: &str| origin.url(&format!("/typed/docs-screenshot.png?type={t}"));
    vec![
        (origin.url("/html-as-image"), Err(NotMedia)),
        (typed("text/html"), Err(NotMedia)),
        (typed("text/plain"), Err(NotMedia)),
        (typed("application/json"), Err(NotMedia)),
        (typed("application/pdf"), Err(NotMedia)),
        (typed("image/"), Err(NotMedia)),
        (typed("image/..%2F..%2Fx"), Err(NotMedia)),
        (typed("imagepng"), Err(NotMedia)),
        (origin.url("/status/404"), Err(HttpStatus)),
        (origin.url("/status/410"), Err(HttpStatus)),
        (origin.url("/status/204"), Err(Empty)),
        (origin.url("/empty"), Err(Empty)),
        (typed("application/octet-stream"), Ok("png")),
        (typed("IMAGE/PNG;%20charset=binary"), Ok("png")),
    ]
}

/// Panics unless every write request after the bucket's creation targets a
/// key `{PREFIX}{taskId}/{name}` with a valid task id.
fn assert_writes_under_task_dirs(s3: &S3Server) {
    let writes = s3.write_requests();
    assert!(!writes.is_empty(), "the run wrote something");
    let bucket_path = format!("/{}", s3.bucket());
    for (method, path) in writes {
        if path == bucket_path || path == format!("{bucket_path}/") {
            assert_eq!(method, "PUT", "only CreateBucket targets the bucket itself");
            continue;
        }
        let key = percent_encoding::percent_decode_str(&path)
            .decode_utf8()
            .unwrap_or_else(|_| panic!("{method} {path}: key is not UTF-8"));
        let rest = key
            .strip_prefix(&format!("{bucket_path}/{PREFIX}"))
            .unwrap_or_else(|| panic!("{method} {path}: outside {PREFIX}"));
        let (task_id, name) = rest
            .split_once('/')
            .unwrap_or_else(|| panic!("{method} {path}: not in a task directory"));
        assert!(
            TaskId::parse(task_id).is_ok(),
            "{method} {path}: invalid task id"
        );
        assert!(
            !name.is_empty() && !name.contains('/'),
            "{method} {path}: not directly in the task directory"
        );
    }
}

#[tokio::test]
async fn hostile_callbacks_and_urls_get_exact_outcomes() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let url_cases = hostile_url_cases(&origin);
    let hostile_urls: Vec<String> = url_cases.iter().map(|(url, ..)| url.clone()).collect();
    let receiver = Arc::new(receiver(&s3));

    // Receiver: each case runs in its own task, so a panic is reported as
    // that case's failure rather than ending the table.
    let cases = receiver_cases(&hostile_urls);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let event = http_event(case.method, &case.body);
        let request = lambda_http::request::from_str(&event.to_string())
            .unwrap_or_else(|err| panic!("{}: event does not parse: {err}", case.name));
        let receiver = receiver.clone();
        let handled = tokio::spawn(async move {
            receiver
                .handle_at(
                    request,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                )
                .await
        })
        .await;
        let response = match handled {
            Ok(response) => response,
            Err(err) => {
                failures.push(format!("{}: panicked: {err}", case.name));
                continue;
            }
        };

        let answer = body_json(&response);
        let given = answer
            .get("error")
            .or_else(|| answer.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_owned();
        if response.status() != case.status || given != case.answer {
            failures.push(format!(
                "{}: expected {} {}, got {} {answer}",
                case.name,
                case.status,
                case.answer,
                response.status()
            ));
        }
        if response.status() == StatusCode::OK {
            let key = answer["key"].as_str().unwrap();
            let task_id = answer["taskId"].as_str().unwrap();
            assert_eq!(
                key,
                format!("{PREFIX}{task_id}/callback.json"),
                "{}",
                case.name
            );
            if case.answer == "stored" {
                assert_eq!(
                    s3.get_bytes(key).await.as_deref(),
                    Some(case.body.as_slice()),
                    "{}: stored bytes",
                    case.name
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Archiver with the strict default policy: every hostile URL is refused
    // before any request, and the refusal names the check.
    let strict = archiver(&s3, SourcePolicy::default());
    let task_id = TaskId::parse("mj_hostile_urls").unwrap();
    let manifest = strict
        .archive_stored(&task_id, Instant::now() + Duration::from_secs(60), false)
        .await
        .unwrap();

    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    assert_eq!(manifest.results.len(), url_cases.len());
    let mut url_failures = Vec::new();
    for ((url, kind, fragment), entry) in url_cases.iter().zip(&manifest.results) {
        assert_eq!(&entry.source_url, url);
        assert_eq!(entry.key, None, "{url}");
        let error = entry.error.as_ref().expect("every hostile URL fails");
        if error.kind != *kind || !error.message.contains(fragment) {
            url_failures.push(format!(
                "{url:?}: expected {kind:?} with {fragment:?}, got {:?}: {}",
                error.kind, error.message
            ));
        }
    }
    assert!(url_failures.is_empty(), "{}", url_failures.join("\n"));
    assert_eq!(origin.total_hits(), 0, "{:?}", origin.request_log());
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_hostile_urls/")).await,
        [
            format!("{PREFIX}mj_hostile_urls/callback.json"),
            format!("{PREFIX}mj_hostile_urls/manifest.json")
        ]
    );

    // Archiver that may reach the local origin: responses that are not media.
    let local = archiver(
        &s3,
        SourcePolicy {
            allow_private: true,
            ..SourcePolicy::default()
        },
    );
    let typed_cases = content_type_cases(&origin);
    let urls: Vec<String> = typed_cases.iter().map(|(url, _)| url.clone()).collect();
    s3.put_bytes(
        &format!("{PREFIX}mj_types/callback.json"),
        &callback_body(json!("mj_types"), json!(urls)),
        "application/json",
    )
    .await;
    let manifest = local
        .archive_stored(
            &TaskId::parse("mj_types").unwrap(),
            Instant::now() + Duration::from_secs(60),
            false,
        )
        .await
        .unwrap();

    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    for (index, ((url, expected), entry)) in typed_cases.iter().zip(&manifest.results).enumerate() {
        match expected {
            Ok(ext) => {
                let key = format!("{PREFIX}mj_types/{index}.{ext}");
                assert_eq!(entry.key.as_deref(), Some(key.as_str()), "{url}: {entry:?}");
                assert_eq!(entry.content_type.as_deref(), Some("image/png"), "{url}");
                assert_eq!(
                    sha256_hex(&s3.get_bytes(&key).await.unwrap()),
                    sha256_hex(&data("docs-screenshot.png"))
                );
            }
            Err(kind) => {
                assert_eq!(
                    entry.error.as_ref().map(|e| e.kind),
                    Some(*kind),
                    "{url}: {entry:?}"
                );
                assert_eq!(entry.key, None, "{url}");
            }
        }
    }

    assert_writes_under_task_dirs(&s3);
    assert!(s3.list_multipart_uploads().await.is_empty());
}

/// Describes an event's outcome in a form a table can compare.
fn outcome(result: &Result<EventSummary, EventError>) -> String {
    match result {
        Ok(summary) if summary.archived.is_empty() && summary.ignored.is_empty() => {
            "nothing".into()
        }
        Ok(summary) if summary.archived.is_empty() => {
            format!("ignored {:?}", summary.ignored)
        }
        Ok(summary) => format!("archived {summary:?}"),
        Err(EventError::NotS3Event(_)) => "not an S3 event".into(),
        Err(EventError::Record(EventKeyError::MissingField { index })) => {
            format!("record {index} missing field")
        }
        Err(EventError::Record(EventKeyError::InvalidEncoding { index, key })) => {
            format!("record {index} invalid encoding {key:?}")
        }
        Err(err @ EventError::Tasks { .. }) => format!("tasks failed: {err}"),
    }
}

#[tokio::test]
async fn malformed_and_foreign_events_are_rejected_or_ignored() {
    let s3 = S3Server::start().await;
    let archiver = archiver(&s3, SourcePolicy::default());
    let s3_event = |key: Value| {
        let mut event = fixture("s3-callback-created.json");
        event["Records"][0]["s3"]["bucket"]["name"] = json!(s3.bucket());
        event["Records"][0]["s3"]["object"]["key"] = key;
        event
    };
    let ignored = |key: &str| format!("ignored {:?}", [key]);
    let long_key = format!("{PREFIX}{}/callback.json", "x".repeat(100_000));
    let mut other_bucket = s3_event(json!("midjourney/mj_task_1/callback.json"));
    other_bucket["Records"][0]["s3"]["bucket"]["name"] = json!("another-bucket");
    let mut no_bucket = s3_event(json!("midjourney/mj_task_1/callback.json"));
    no_bucket["Records"][0]["s3"]["bucket"]["name"] = Value::Null;

    let cases: Vec<(&str, Value, String)> = vec![
        (
            "not S3-shaped",
            json!({"foo": "bar"}),
            "not an S3 event".into(),
        ),
        ("null", Value::Null, "not an S3 event".into()),
        ("array", json!([]), "not an S3 event".into()),
        ("string", json!("Records"), "not an S3 event".into()),
        (
            "Records a string",
            json!({"Records": "x"}),
            "not an S3 event".into(),
        ),
        (
            "Records of null",
            json!({"Records": [null]}),
            "not an S3 event".into(),
        ),
        (
            "empty record",
            json!({"Records": [{}]}),
            "not an S3 event".into(),
        ),
        (
            "SQS-shaped",
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "1", "body": "{}"}]}),
            "not an S3 event".into(),
        ),
        (
            "EventBridge-shaped",
            json!({"source": "aws.s3", "detail-type": "Object Created",
                   "detail": {"bucket": {"name": s3.bucket()},
                              "object": {"key": "midjourney/mj_task_1/callback.json"}}}),
            "not an S3 event".into(),
        ),
        ("no records", json!({"Records": []}), "nothing".into()),
        (
            "s3:TestEvent",
            json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": s3.bucket()}),
            "nothing".into(),
        ),
        (
            "key null",
            s3_event(Value::Null),
            "record 0 missing field".into(),
        ),
        ("bucket null", no_bucket, "record 0 missing field".into()),
        (
            "key not UTF-8 when decoded",
            s3_event(json!("midjourney/%FF/callback.json")),
            r#"record 0 invalid encoding "midjourney/%FF/callback.json""#.into(),
        ),
        ("key a number", s3_event(json!(5)), "not an S3 event".into()),
        (
            "other bucket",
            other_bucket,
            ignored("midjourney/mj_task_1/callback.json"),
        ),
        (
            "dot-dot task",
            s3_event(json!("midjourney/../callback.json")),
            ignored("midjourney/../callback.json"),
        ),
        (
            "encoded dot-dot task",
            s3_event(json!("midjourney/%2e%2e/callback.json")),
            ignored("midjourney/../callback.json"),
        ),
        (
            "encoded slash in task",
            s3_event(json!("midjourney/a%2Fb/callback.json")),
            ignored("midjourney/a/b/callback.json"),
        ),
        (
            "traversal out of the prefix",
            s3_event(json!("midjourney/..%2F..%2Fx/callback.json")),
            ignored("midjourney/../../x/callback.json"),
        ),
        (
            "NUL in task",
            s3_event(json!("midjourney/mj%00x/callback.json")),
            ignored("midjourney/mj\0x/callback.json"),
        ),
        (
            "result object",
            s3_event(json!("midjourney/mj_task_1/0.png")),
            ignored("midjourney/mj_task_1/0.png"),
        ),
        (
            "manifest object",
            s3_event(json!("midjourney/mj_task_1/manifest.json")),
            ignored("midjourney/mj_task_1/manifest.json"),
        ),
        (
            "callback without a task",
            s3_event(json!("midjourney/callback.json")),
            ignored("midjourney/callback.json"),
        ),
        (
            "callback outside the prefix",
            s3_event(json!("callback.json")),
            ignored("callback.json"),
        ),
        ("long key", s3_event(json!(long_key)), ignored(&long_key)),
    ];

    s3.clear_request_log();
    let mut failures = Vec::new();
    for (name, event, expected) in cases {
        let result = handle_event(&archiver, event, Instant::now() + Duration::from_secs(30)).await;
        let got = outcome(&result);
        if got != expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(s3.write_requests(), Vec::<(String, String)>::new());
}

fn response_status_and_body(outcome: &Invocation) -> (u64, Value) {
    let response = outcome.json();
    let body = response["body"]
        .as_str()
        .expect("API Gateway response has a body");
    (
        response["statusCode"].as_u64().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn binaries_survive_events_of_the_wrong_shape() {
    let s3 = S3Server::start().await;
    let api = RuntimeApi::start().await;
    let mut env = lambda_env("mj-archive-hostile", &api.address());
    env.extend(s3.env());
    env.push(("KEY_PREFIX".into(), PREFIX.into()));
    env.push(("RUST_LOG".into(), "info".into()));
    let deadline = Duration::from_secs(20);
    s3.clear_request_log();

    let mut receiver = ChildGuard::spawn(RECEIVER_BIN, &[] as &[&str], &env);
    assert!(
        api.wait_for_pollers(1, Duration::from_secs(30)).await,
        "{}",
        receiver.output()
    );
    for event in [
        json!({"foo": "bar"}),
        Value::Null,
        json!([1, 2]),
        json!("GET /"),
    ] {
        let outcome = api.invoke(event.clone(), deadline).await;
        assert!(
            matches!(&outcome, Invocation::Error { error_type, .. } if !error_type.is_empty()),
            "{event}: {outcome:?}\n{}",
            receiver.output()
        );
        assert_eq!(receiver.try_wait(), None, "{}", receiver.output());
    }
    let body = task_body("mj_after_hostile");
    let outcome = api.invoke(http_event("POST", &body), deadline).await;
    let (status, answer) = response_status_and_body(&outcome);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "stored");
    assert_eq!(
        s3.get_bytes(&format!("{PREFIX}mj_after_hostile/callback.json"))
            .await,
        Some(body)
    );

    let mut archiver = ChildGuard::spawn(ARCHIVER_BIN, &[] as &[&str], &env);
    assert!(
        api.wait_for_pollers(2, Duration::from_secs(30)).await,
        "{}",
        archiver.output()
    );
    // A killed poller closes its connection; the emulator then stops
    // counting it, so the next events go to the archiver.
    receiver.kill();
    let started = Instant::now();
    while api.waiting_pollers() > 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the receiver's poll is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcome = api.invoke(json!({"foo": "bar"}), deadline).await;
    match &outcome {
        Invocation::Error { error_message, .. } => {
            assert!(
                error_message.contains("not an S3 event notification"),
                "{error_message}"
            )
        }
        other => panic!("{other:?}\n{}", archiver.output()),
    }
    assert_eq!(archiver.try_wait(), None, "{}", archiver.output());

    let mut event = fixture("s3-callback-created.json");
    event["Records"][0]["s3"]["bucket"]["name"] = json!(s3.bucket());
    event["Records"][0]["s3"]["object"]["key"] = json!("midjourney/mj_after_hostile/callback.json");
    let outcome = api.invoke(event, deadline).await;
    assert_eq!(
        outcome.json()["archived"][0]["status"],
        "complete",
        "{}",
        archiver.output()
    );

    for child in [&receiver, &archiver] {
        assert!(!child.stderr().contains("panicked"), "{}", child.output());
        assert!(!child.stdout().contains("panicked"), "{}", child.output());
    }
    assert_writes_under_task_dirs(&s3);
}
