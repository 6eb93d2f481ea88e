//! Self-tests of the integration-test harness in `tests/support`.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use serde_json::{json, Value};

use support::origin::{generated_bytes, generated_sha256, Origin};
use support::process::ChildGuard;
use support::runtime_api::{lambda_env, Invocation, RuntimeApi, FUNCTION_ARN};
use support::s3::{Fault, FaultRule, S3Server};
use support::{data, sha256_hex};

/// Set in the environment of a re-executed copy of this test binary to make
/// `lambda_child_entry_point` run a lambda_runtime function.
const LAMBDA_CHILD_VARIABLE: &str = "MJ_HARNESS_LAMBDA_CHILD";

const SAMPLE_FILES: [(&str, &str); 4] = [
    ("docs-screenshot.png", "image/png"),
    ("docs-screenshot.jpeg", "image/jpeg"),
    ("docs-screenshot.webp", "image/webp"),
    ("docs-screenshot-small.gif", "image/gif"),
];

/// Serializes `value` for a request body (the reqwest `json` feature is off).
fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("failed to build the reqwest client")
}

// ---------------------------------------------------------------- S3 server

#[tokio::test]
async fn s3_rejects_wrong_secret() {
    let s3 = S3Server::start().await;
    let client = s3.client_with_secret("not-the-secret");

    let result = client
        .put_object()
        .bucket(s3.bucket())
        .key("unauthorized.txt")
        .body(ByteStream::from_static(b"must not be stored"))
        .send()
        .await;

    let err = result.expect_err("a request signed with the wrong secret must fail");
    let service_error = err
        .as_service_error()
        .expect("the server must answer with an S3 error");
    assert_eq!(
        service_error.code(),
        Some("SignatureDoesNotMatch"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(
        err.raw_response().map(|raw| raw.status().as_u16()),
        Some(403)
    );
    assert_eq!(s3.get_bytes("unauthorized.txt").await, None);
}

#[tokio::test]
async fn s3_round_trip_keeps_bytes_and_metadata() {
    let s3 = S3Server::start().await;
    let body = data("docs-screenshot.png");

    s3.client()
        .put_object()
        .bucket(s3.bucket())
        .key("task-1/0.png")
        .content_type("image/png")
        .content_disposition("inline; filename=\"task-1-0.png\"")
        .metadata("source-url", "https://cdn.example.com/a.png")
        .metadata("sha256", sha256_hex(&body))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("PutObject failed: {}", DisplayErrorContext(&err)));

    let stored = s3
        .get_bytes("task-1/0.png")
        .await
        .expect("the object must exist");
    assert_eq!(stored.len(), body.len());
    assert_eq!(sha256_hex(&stored), sha256_hex(&body));

    let head = s3
        .head("task-1/0.png")
        .await
        .expect("the object must exist");
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    assert_eq!(head.content_length, Some(body.len() as i64));
    assert_eq!(
        head.content_disposition.as_deref(),
        Some("inline; filename=\"task-1-0.png\"")
    );
    assert_eq!(
        head.metadata.get("source-url").map(String::as_str),
        Some("https://cdn.example.com/a.png")
    );
    assert_eq!(head.metadata.get("sha256"), Some(&sha256_hex(&body)));
    assert_eq!(head.metadata.len(), 2);

    let get = s3
        .client()
        .get_object()
        .bucket(s3.bucket())
        .key("task-1/0.png")
        .send()
        .await
        .expect("GetObject must succeed");
    assert_eq!(get.content_type(), Some("image/png"));
    assert_eq!(
        get.content_disposition(),
        Some("inline; filename=\"task-1-0.png\"")
    );
    assert_eq!(
        get.metadata().and_then(|m| m.get("sha256")),
        Some(&sha256_hex(&body))
    );

    assert_eq!(s3.head("task-1/missing.png").await, None);
    assert_eq!(s3.get_bytes("task-1/missing.png").await, None);
}

#[tokio::test]
async fn s3_lists_keys_sorted_by_prefix() {
    let s3 = S3Server::start().await;
    for key in [
        "task-2/manifest.json",
        "task-2/0.png",
        "task-2/1.png",
        "task-3/0.png",
    ] {
        s3.put_bytes(key, b"x", "application/octet-stream").await;
    }

    assert_eq!(
        s3.list_keys("task-2/").await,
        vec!["task-2/0.png", "task-2/1.png", "task-2/manifest.json"]
    );
    assert_eq!(s3.list_keys("").await.len(), 4);
    assert!(s3.list_keys("task-9/").await.is_empty());
}

#[tokio::test]
async fn s3_fault_turns_put_into_503() {
    let s3 = S3Server::start().await;
    s3.set_fault(Fault::ServiceUnavailable);

    let err = s3
        .client()
        .put_object()
        .bucket(s3.bucket())
        .key("faulted.txt")
        .body(ByteStream::from_static(b"never stored"))
        .send()
        .await
        .expect_err("PutObject must fail while the fault is set");
    assert_eq!(
        err.raw_response().map(|raw| raw.status().as_u16()),
        Some(503)
    );
    assert_eq!(
        err.code(),
        Some("SlowDown"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(s3.faults_injected(), 1);

    s3.set_fault(Fault::InternalError);
    let err = s3
        .client()
        .put_object()
        .bucket(s3.bucket())
        .key("faulted.txt")
        .body(ByteStream::from_static(b"never stored"))
        .send()
        .await
        .expect_err("PutObject must fail while the fault is set");
    assert_eq!(
        err.raw_response().map(|raw| raw.status().as_u16()),
        Some(500)
    );
    assert_eq!(err.code(), Some("InternalError"));

    s3.set_fault(Fault::CloseConnection);
    let err = s3
        .client()
        .put_object()
        .bucket(s3.bucket())
        .key("faulted.txt")
        .body(ByteStream::from_static(b"never stored"))
        .send()
        .await
        .expect_err("PutObject must fail while the fault is set");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "expected a connection failure, got {}",
        DisplayErrorContext(&err)
    );

    s3.set_fault(Fault::None);
    assert_eq!(s3.get_bytes("faulted.txt").await, None);
}

#[tokio::test]
async fn s3_fault_rule_limits_methods_and_count() {
    let s3 = S3Server::start().await;
    s3.put_bytes("readable.txt", b"still readable", "text/plain")
        .await;
    s3.set_fault_rule(
        FaultRule::new(Fault::ServiceUnavailable)
            .methods(&["PUT"])
            .times(2),
    );

    assert_eq!(
        s3.get_bytes("readable.txt").await.as_deref(),
        Some(&b"still readable"[..])
    );
    for attempt in 1..=2 {
        let result = s3
            .client()
            .put_object()
            .bucket(s3.bucket())
            .key("later.txt")
            .body(ByteStream::from_static(b"third time"))
            .send()
            .await;
        assert!(result.is_err(), "PUT attempt {attempt} must fail");
    }
    s3.put_bytes("later.txt", b"third time", "text/plain").await;

    assert_eq!(s3.faults_injected(), 2);
    assert_eq!(
        s3.get_bytes("later.txt").await.as_deref(),
        Some(&b"third time"[..])
    );
}

#[tokio::test]
async fn s3_records_requests() {
    let s3 = S3Server::start().await;
    assert_eq!(
        s3.request_log(),
        vec![("PUT".to_owned(), "/mj-archive-test/".to_owned())]
    );
    s3.clear_request_log();

    s3.put_bytes("task-4/callback.json", b"{}", "application/json")
        .await;
    let _ = s3.get_bytes("task-4/callback.json").await;

    assert_eq!(s3.requests(), 2);
    assert_eq!(
        s3.request_log(),
        vec![
            (
                "PUT".to_owned(),
                "/mj-archive-test/task-4/callback.json".to_owned()
            ),
            (
                "GET".to_owned(),
                "/mj-archive-test/task-4/callback.json".to_owned()
            ),
        ]
    );
    assert_eq!(s3.write_requests().len(), 1);
}

#[tokio::test]
async fn s3_tracks_multipart_uploads() {
    let s3 = S3Server::start().await;
    let client = s3.client();
    assert!(s3.list_multipart_uploads().await.is_empty());

    let aborted = client
        .create_multipart_upload()
        .bucket(s3.bucket())
        .key("task-5/0.mp4")
        .content_type("video/mp4")
        .send()
        .await
        .expect("CreateMultipartUpload must succeed");
    let aborted_id = aborted.upload_id().expect("an upload id").to_owned();
    assert_eq!(
        s3.list_multipart_uploads().await,
        vec![("task-5/0.mp4".to_owned(), aborted_id.clone())]
    );

    client
        .abort_multipart_upload()
        .bucket(s3.bucket())
        .key("task-5/0.mp4")
        .upload_id(&aborted_id)
        .send()
        .await
        .expect("AbortMultipartUpload must succeed");
    assert!(s3.list_multipart_uploads().await.is_empty());

    let created = client
        .create_multipart_upload()
        .bucket(s3.bucket())
        .key("task-5/1.mp4")
        .content_type("video/mp4")
        .content_disposition("inline")
        .metadata("sha256", "abc")
        .send()
        .await
        .expect("CreateMultipartUpload must succeed");
    let upload_id = created.upload_id().expect("an upload id").to_owned();
    let body = generated_bytes(1000, 3);
    let part = client
        .upload_part()
        .bucket(s3.bucket())
        .key("task-5/1.mp4")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("UploadPart failed: {}", DisplayErrorContext(&err)));
    let completed = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        )
        .build();
    client
        .complete_multipart_upload()
        .bucket(s3.bucket())
        .key("task-5/1.mp4")
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "CompleteMultipartUpload failed: {}",
                DisplayErrorContext(&err)
            )
        });

    assert!(s3.list_multipart_uploads().await.is_empty());
    assert_eq!(s3.get_bytes("task-5/1.mp4").await, Some(body));
    let head = s3
        .head("task-5/1.mp4")
        .await
        .expect("the object must exist");
    assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(head.content_disposition.as_deref(), Some("inline"));
    assert_eq!(head.metadata.get("sha256").map(String::as_str), Some("abc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conditional_put_has_one_winner() {
    let s3 = S3Server::start().await;
    let client = s3.client();

    let attempts = (0..10).map(|attempt| {
        let client = client.clone();
        async move {
            client
                .put_object()
                .bucket(support::s3::BUCKET)
                .key("task-6/callback.json")
                .if_none_match("*")
                .body(ByteStream::from(
                    format!("{{\"attempt\":{attempt}}}").into_bytes(),
                ))
                .send()
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;

    let successes = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(successes, 1);
    for err in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(
            err.code(),
            Some("PreconditionFailed"),
            "{}",
            DisplayErrorContext(err)
        );
        assert_eq!(
            err.raw_response().map(|raw| raw.status().as_u16()),
            Some(412)
        );
    }
}

// ---------------------------------------------------------------- origin

#[tokio::test]
async fn origin_serves_files_with_content_type() {
    let origin = Origin::start().await;
    let client = http_client();

    for (name, content_type) in SAMPLE_FILES {
        let response = client
            .get(origin.url(&format!("/files/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["content-type"], content_type, "{name}");
        let expected = data(name);
        assert_eq!(
            response.content_length(),
            Some(expected.len() as u64),
            "{name}"
        );
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            expected.as_slice(),
            "{name}"
        );
    }

    assert_eq!(origin.hits("/files/docs-screenshot.png"), 1);
    assert_eq!(origin.total_hits(), 4);
    assert_eq!(origin.hits("/files/never-requested.png"), 0);
}

#[tokio::test]
async fn origin_chunked_has_no_content_length() {
    let origin = Origin::start().await;
    let response = http_client()
        .get(origin.url("/chunked/docs-screenshot.png"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        data("docs-screenshot.png").as_slice()
    );
}

#[tokio::test]
async fn origin_truncate_breaks_body_read() {
    let origin = Origin::start().await;
    let full_len = data("docs-screenshot.png").len();

    for path in [
        "/truncate/docs-screenshot.png?after=1000",
        "/truncate/docs-screenshot.png?after=1000&chunked=1",
    ] {
        let response = http_client().get(origin.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let expected_length = if path.contains("chunked") {
            None
        } else {
            Some(full_len as u64)
        };
        assert_eq!(response.content_length(), expected_length, "{path}");

        let mut received = 0;
        let mut failed = false;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => received += bytes.len(),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "reading {path} must fail");
        assert_eq!(received, 1000, "{path}");
    }
}

#[tokio::test]
async fn origin_flaky_fails_then_succeeds() {
    let origin = Origin::start().await;
    let client = http_client();
    let path = "/flaky/docs-screenshot.png?fail=2&status=503";

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            client
                .get(origin.url(path))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }

    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(origin.hits(path), 3);
    let other = client
        .get(origin.url("/flaky/docs-screenshot.png?fail=1&status=500"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 500);
}

#[tokio::test]
async fn origin_redirects() {
    let origin = Origin::start().await;
    let target = origin.url("/files/docs-screenshot-small.gif");

    let single = http_client()
        .get(origin.url(&format!("/redirect?to={target}&status=307")))
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 307);
    assert_eq!(single.headers()["location"], target.as_str());

    let following = reqwest::Client::new();
    let chained = following
        .get(origin.url(&format!("/redirect-chain?hops=3&to={target}")))
        .send()
        .await
        .unwrap();
    assert_eq!(chained.status(), 200);
    assert_eq!(
        chained.bytes().await.unwrap().as_ref(),
        data("docs-screenshot-small.gif").as_slice()
    );
    let chain_hits = origin
        .request_log()
        .iter()
        .filter(|target| target.starts_with("/redirect-chain"))
        .count();
    assert_eq!(chain_hits, 3);
    assert_eq!(origin.hits("/files/docs-screenshot-small.gif"), 1);
}

#[tokio::test]
async fn origin_fixed_routes() {
    let origin = Origin::start().await;
    let client = http_client();

    let untyped = client
        .get(origin.url("/typed/docs-screenshot.png?type=none"))
        .send()
        .await
        .unwrap();
    assert!(untyped.headers().get("content-type").is_none());
    assert_eq!(
        untyped.bytes().await.unwrap().len(),
        data("docs-screenshot.png").len()
    );

    let retyped = client
        .get(origin.url("/typed/docs-screenshot.png?type=application/octet-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        retyped.headers()["content-type"],
        "application/octet-stream"
    );

    let empty = client.get(origin.url("/empty")).send().await.unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.headers()["content-type"], "image/png");
    assert_eq!(empty.content_length(), Some(0));

    let status_410 = client.get(origin.url("/status/410")).send().await.unwrap();
    assert_eq!(status_410.status(), 410);
    assert_eq!(
        status_410.headers()["content-type"],
        "text/html; charset=utf-8"
    );

    let html = client
        .get(origin.url("/html-as-image"))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    assert!(html.text().await.unwrap().starts_with("<!DOCTYPE html>"));

    let missing = client
        .get(origin.url("/files/missing.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let escape = client
        .get(origin.url("/files/..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}

#[tokio::test]
async fn origin_drip_is_slow_and_complete() {
    let origin = Origin::start().await;
    let expected = data("docs-screenshot-small.gif");
    let started = Instant::now();

    let response = http_client()
        .get(origin.url("/drip/docs-screenshot-small.gif?chunk=16384&interval_ms=40"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_length(), Some(expected.len() as u64));
    let body = response.bytes().await.unwrap();

    // 50841 bytes in 16 KiB chunks is 4 chunks, so 3 pauses of 40 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body.as_ref(), expected.as_slice());
}

#[test]
fn generated_bytes_are_deterministic() {
    let first = generated_bytes(100_003, 5);

    assert_eq!(first.len(), 100_003);
    assert_eq!(first, generated_bytes(100_003, 5));
    assert_ne!(first, generated_bytes(100_003, 6));
    assert_eq!(&generated_bytes(1_000, 5)[..], &first[..1_000]);
    assert_eq!(generated_sha256(100_003, 5), sha256_hex(&first));
    assert_eq!(generated_bytes(0, 5), Vec::<u8>::new());
    // The first SplitMix64 output for seed 0. It pins the sequence, which
    // other tests rely on when they compare digests.
    assert_eq!(
        generated_bytes(8, 0),
        0xE220_A839_7B1D_CDAF_u64.to_le_bytes().to_vec()
    );
    assert_eq!(
        generated_sha256(0, 5),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[tokio::test]
async fn origin_generated_matches_helpers() {
    let origin = Origin::start().await;
    let client = http_client();

    let sized = client
        .get(origin.url("/generated/100003?type=video/mp4&seed=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(sized.headers()["content-type"], "video/mp4");
    assert_eq!(sized.content_length(), Some(100_003));
    let body = sized.bytes().await.unwrap();
    assert_eq!(body.as_ref(), generated_bytes(100_003, 5).as_slice());

    let chunked = client
        .get(origin.url("/generated/300000?seed=9&chunked=1"))
        .send()
        .await
        .unwrap();
    assert!(chunked.headers().get("content-length").is_none());
    assert_eq!(
        chunked.headers()["content-type"],
        "application/octet-stream"
    );
    let body = chunked.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), generated_sha256(300_000, 9));
}

// ---------------------------------------------------------------- Runtime API

/// Polls `/invocation/next` once, as a function process would.
async fn poll_next(client: &reqwest::Client, api: &str) -> (HashMap<String, String>, Value) {
    let response = client
        .get(format!("http://{api}/2018-06-01/runtime/invocation/next"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    let body = response.bytes().await.unwrap();
    (headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn runtime_api_delivers_event_and_response() {
    let api = RuntimeApi::start().await;
    let address = api.address();

    let function = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (headers, event) = poll_next(&client, &address).await;
        let request_id = headers["lambda-runtime-aws-request-id"].clone();
        let reply = json!({"statusCode": 200, "received": event, "headers": headers});
        let posted = client
            .post(format!(
                "http://{address}/2018-06-01/runtime/invocation/{request_id}/response"
            ))
            .body(json_body(&reply))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);

        let again = client
            .post(format!(
                "http://{address}/2018-06-01/runtime/invocation/{request_id}/response"
            ))
            .body(json_body(&reply))
            .send()
            .await
            .unwrap();
        assert_eq!(
            again.status(),
            400,
            "a second outcome for one request id must be rejected"
        );
    });

    let started_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let outcome = api
        .invoke(json!({"hello": "world"}), Duration::from_secs(30))
        .await;
    function.await.unwrap();

    let reply = outcome.json();
    assert_eq!(reply["statusCode"], 200);
    assert_eq!(reply["received"], json!({"hello": "world"}));
    let headers = &reply["headers"];
    assert_eq!(headers["lambda-runtime-invoked-function-arn"], FUNCTION_ARN);
    assert!(headers["lambda-runtime-trace-id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    assert_eq!(headers["content-type"], "application/json");
    let deadline_ms: u128 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        deadline_ms >= started_ms + 29_000,
        "deadline {deadline_ms} is not about 30 s after {started_ms}"
    );
    assert!(
        deadline_ms <= started_ms + 31_000,
        "deadline {deadline_ms} is not about 30 s after {started_ms}"
    );
    assert_eq!(api.delivered(), 1);
}

#[tokio::test]
async fn runtime_api_reports_function_error() {
    let api = RuntimeApi::start().await;
    let address = api.address();

    let function = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (headers, _event) = poll_next(&client, &address).await;
        let request_id = &headers["lambda-runtime-aws-request-id"];
        client
            .post(format!(
                "http://{address}/2018-06-01/runtime/invocation/{request_id}/error"
            ))
            .header("Lambda-Runtime-Function-Error-Type", "Unhandled")
            .body(json_body(
                &json!({"errorType": "ArchiveError", "errorMessage": "download failed"}),
            ))
            .send()
            .await
            .unwrap()
            .status()
    });

    let outcome = api.invoke(json!({}), Duration::from_secs(5)).await;
    assert_eq!(function.await.unwrap(), 202);
    assert_eq!(
        outcome,
        Invocation::Error {
            error_type: "ArchiveError".to_owned(),
            error_message: "download failed".to_owned(),
        }
    );
}

#[tokio::test]
async fn runtime_api_records_init_error() {
    let api = RuntimeApi::start().await;
    assert_eq!(api.init_error(), None);

    let status = reqwest::Client::new()
        .post(format!(
            "http://{}/2018-06-01/runtime/init/error",
            api.address()
        ))
        .body(json_body(
            &json!({"errorType": "Runtime.ConfigError", "errorMessage": "BUCKET_NAME is missing"}),
        ))
        .send()
        .await
        .unwrap()
        .status();

    assert_eq!(status, 202);
    let error = api.init_error().expect("the init error must be recorded");
    assert_eq!(error.error_type, "Runtime.ConfigError");
    assert_eq!(error.error_message, "BUCKET_NAME is missing");
}

#[tokio::test]
async fn runtime_api_times_out_without_poller() {
    let api = RuntimeApi::start().await;
    let outcome = api
        .invoke_with_timeout(
            json!({}),
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(outcome, Invocation::TimedOut);

    // The withdrawn event must not reach a process that polls later.
    let address = api.address();
    let late_poll =
        tokio::spawn(async move { poll_next(&reqwest::Client::new(), &address).await.1 });
    let next = tokio::spawn(async move {
        api.invoke_with_timeout(
            json!({"second": true}),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await
    });
    assert_eq!(late_poll.await.unwrap(), json!({"second": true}));
    next.abort();
}

#[tokio::test]
async fn runtime_api_survives_abandoned_poll() {
    let api = RuntimeApi::start().await;
    let address = api.address();

    // A process killed while it waits for an event closes its connection.
    let mut abandoned = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request =
        format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: {address}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut abandoned, request.as_bytes())
        .await
        .unwrap();
    assert!(api.wait_for_pollers(1, Duration::from_secs(5)).await);
    drop(abandoned);

    let started = Instant::now();
    while api.waiting_pollers() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the closed poll is still waiting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let function = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (headers, event) = poll_next(&client, &address).await;
        let request_id = &headers["lambda-runtime-aws-request-id"];
        client
            .post(format!(
                "http://{address}/2018-06-01/runtime/invocation/{request_id}/response"
            ))
            .body(json_body(&event))
            .send()
            .await
            .unwrap();
    });

    let outcome = api
        .invoke_with_timeout(
            json!({"n": 1}),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await;
    function.await.unwrap();
    assert_eq!(outcome.json(), json!({"n": 1}));
}

// ------------------------------------------- lambda_runtime in a child process

/// Entry point of the child process that `lambda_runtime_*` tests start: a
/// copy of this test binary that runs only this test, with
/// `LAMBDA_CHILD_VARIABLE` set. In a normal test run it returns at once.
#[test]
fn lambda_child_entry_point() {
    if std::env::var_os(LAMBDA_CHILD_VARIABLE).is_none() {
        return;
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(
        echo_function,
    )));
    panic!("lambda_runtime::run returned: {result:?}");
}

/// Echoes the event with its context. `{"fail": true}` returns an error and
/// `{"sleep_ms": N}` waits N ms before responding.
async fn echo_function(
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    if payload["fail"] == json!(true) {
        return Err("failure requested by the event".into());
    }
    if let Some(sleep_ms) = payload["sleep_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }

    let remaining_ms = context
        .deadline()
        .duration_since(SystemTime::now())
        .map(|remaining| remaining.as_millis() as u64)
        .unwrap_or(0);
    Ok(json!({
        "event": payload,
        "request_id": context.request_id,
        "function_arn": context.invoked_function_arn,
        "remaining_ms": remaining_ms,
        "pid": std::process::id(),
    }))
}

fn spawn_lambda_child(api: &RuntimeApi) -> ChildGuard {
    let mut env = lambda_env("harness-echo", &api.address());
    env.push((LAMBDA_CHILD_VARIABLE.to_owned(), "1".to_owned()));
    let program = std::env::current_exe().expect("the test binary path");
    ChildGuard::spawn(
        program.to_str().expect("the test binary path is UTF-8"),
        &[
            "--exact",
            "lambda_child_entry_point",
            "--nocapture",
            "--test-threads",
            "1",
        ],
        &env,
    )
}

#[tokio::test]
async fn lambda_runtime_child_gets_response_and_error() {
    let api = RuntimeApi::start().await;
    let child = spawn_lambda_child(&api);
    assert!(
        api.wait_for_pollers(1, Duration::from_secs(20)).await,
        "the child never polled for an event\n{}",
        child.output()
    );

    let outcome = api
        .invoke(json!({"task": "t-1"}), Duration::from_secs(60))
        .await;
    assert!(outcome.is_response(), "{outcome:?}\n{}", child.output());
    let reply = outcome.json();
    assert_eq!(reply["event"], json!({"task": "t-1"}));
    assert_eq!(reply["function_arn"], FUNCTION_ARN);
    assert_eq!(reply["pid"], json!(child.id()));
    let remaining_ms = reply["remaining_ms"].as_u64().unwrap();
    assert!(
        (50_000..=60_000).contains(&remaining_ms),
        "remaining {remaining_ms} ms"
    );

    let failed = api
        .invoke(json!({"fail": true}), Duration::from_secs(10))
        .await;
    match failed {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_message, "failure requested by the event");
            assert!(!error_type.is_empty());
        }
        other => panic!("expected an error, got {other:?}\n{}", child.output()),
    }
    assert_eq!(api.init_error(), None);
}

#[tokio::test]
async fn lambda_runtime_children_share_events() {
    let api = RuntimeApi::start().await;
    let children = [spawn_lambda_child(&api), spawn_lambda_child(&api)];
    assert!(
        api.wait_for_pollers(2, Duration::from_secs(20)).await,
        "both children must poll\n{}\n{}",
        children[0].output(),
        children[1].output()
    );

    let invocations =
        (0..6).map(|n| api.invoke(json!({"n": n, "sleep_ms": 300}), Duration::from_secs(30)));
    let outcomes = futures::future::join_all(invocations).await;

    let mut pids = BTreeSet::new();
    for (n, outcome) in outcomes.iter().enumerate() {
        let reply = outcome.json();
        assert_eq!(reply["event"]["n"], json!(n));
        pids.insert(reply["pid"].as_u64().unwrap());
    }
    let expected: BTreeSet<u64> = children.iter().map(|child| u64::from(child.id())).collect();
    assert_eq!(pids, expected);
    assert_eq!(api.delivered(), 6);
}

// ---------------------------------------------------------------- processes

#[tokio::test]
async fn child_guard_clears_env_and_kills() {
    let env = vec![("MJ_HARNESS_VALUE".to_owned(), "kept".to_owned())];
    let mut child = ChildGuard::spawn(
        "/bin/sh",
        &[
            "-c",
            "echo \"value=$MJ_HARNESS_VALUE\"; env; echo to-stderr >&2; exec sleep 30",
        ],
        &env,
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while !child.stderr().contains("to-stderr") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stdout = child.stdout();
    assert!(stdout.starts_with("value=kept\n"), "{}", child.output());
    assert_eq!(child.stderr(), "to-stderr\n");

    let allowed = [
        "PATH",
        "HOME",
        "MJ_HARNESS_VALUE",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    ];
    for line in stdout.lines().skip(1) {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            allowed.contains(&name),
            "unexpected variable {name} in the child\n{stdout}"
        );
    }

    assert_eq!(child.try_wait(), None, "the child must still run");
    let pid = child.id();
    drop(child);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} must be killed and reaped"
    );

    let mut quick = ChildGuard::spawn("/bin/sh", &["-c", "exit 3"], &[]);
    let status = quick
        .wait_timeout(Duration::from_secs(5))
        .await
        .expect("the child must exit");
    assert_eq!(status.code(), Some(3));
}
