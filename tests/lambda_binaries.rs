//! The real `receiver` and `archiver` binaries under the Lambda Runtime API
//! emulator, against a real S3-compatible server and a real HTTP origin on
//! 127.0.0.1.

mod provider_stub;
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mj_archive::manifest::{ArchiveStatus, FailureKind, Manifest};
use mj_archive::secret::Secret;
use mj_archive::signature::sign;
use provider_stub::{ProviderStub, TaskRecord};
use serde_json::{json, Value};
use support::data;
use support::origin::Origin;
use support::process::{ChildGuard, ARCHIVER_BIN, RECEIVER_BIN};
use support::runtime_api::{lambda_env, Invocation, RuntimeApi};
use support::s3::S3Server;

const PREFIX: &str = "midjourney/";
/// Maximum wait for a started function to poll for its first event.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline sent to the function for ordinary invocations.
const DEADLINE: Duration = Duration::from_secs(60);
/// Maximum time a binary with an invalid configuration may take to exit.
const CONFIG_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A function process polling its own Runtime API emulator.
struct Function {
    api: RuntimeApi,
    child: ChildGuard,
}

impl Function {
    /// Starts `program` with the Lambda variables, `S3Server::env()`,
    /// `KEY_PREFIX` and `extra`, and waits until it polls for an event.
    async fn start(program: &str, name: &str, s3: &S3Server, extra: &[(&str, &str)]) -> Function {
        let api = RuntimeApi::start().await;
        let child = ChildGuard::spawn(
            program,
            &[] as &[&str],
            &function_env(name, &api, s3, extra),
        );
        assert!(
            api.wait_for_pollers(1, START_TIMEOUT).await,
            "{name} never polled for an event\n{}",
            child.output()
        );
        Function { api, child }
    }

    async fn invoke(&self, event: Value) -> Invocation {
        self.api.invoke(event, DEADLINE).await
    }

    /// Asserts that the process is still running, so it can take more events.
    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().is_none(),
            "the function exited\n{}",
            self.child.output()
        );
    }
}

fn function_env(
    name: &str,
    api: &RuntimeApi,
    s3: &S3Server,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = lambda_env(name, &api.address());
    env.extend(s3.env());
    env.push(("KEY_PREFIX".to_owned(), PREFIX.to_owned()));
    for (variable, value) in extra {
        env.retain(|(existing, _)| existing != variable);
        env.push(((*variable).to_owned(), (*value).to_owned()));
    }
    env
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Returns the HTTP status and parsed JSON body of a lambda_http response.
fn http_response(invocation: &Invocation, output: &str) -> (u64, Value) {
    assert!(invocation.is_response(), "{invocation:?}\n{output}");
    let response = invocation.json();
    let status = response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode in {response}"));
    let body = response["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no string body in {response}"));
    let body = serde_json::from_str(body).unwrap_or_else(|err| panic!("body {body:?}: {err}"));
    (status, body)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Builds an HTTP API event for `body`, with signature headers for `task_id` and
/// `timestamp` made with `hmac_key`, and `?token=` when `token` is set.
fn signed_event(
    body: &Value,
    task_id: &str,
    timestamp: u64,
    hmac_key: &str,
    token: Option<&str>,
) -> Value {
    let text = body.to_string();
    let mut event = fixture("apigw-http-success.json");
    event["headers"]["content-length"] = json!(text.len().to_string());
    event["headers"]["x-webhook-timestamp"] = json!(timestamp.to_string());
    event["headers"]["x-webhook-signature"] =
        json!(sign(&Secret::new(hmac_key), task_id, timestamp));
    event["body"] = json!(text);
    if let Some(token) = token {
        event["rawQueryString"] = json!(format!("token={token}"));
        event["queryStringParameters"] = json!({"token": token});
    }
    event
}

/// Builds `events/s3-callback-created.json` with `key` in the test bucket.
fn s3_event(s3: &S3Server, key: &str) -> Value {
    let mut event = fixture("s3-callback-created.json");
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = json!(s3.bucket());
    record["bucket"]["arn"] = json!(format!("arn:aws:s3:::{}", s3.bucket()));
    record["object"]["key"] = json!(key);
    event
}

/// The sample files in result order, with the extension the archive gives each.
const SAMPLES: [(&str, &str); 4] = [
    ("docs-screenshot.png", "png"),
    ("docs-screenshot.jpeg", "jpeg"),
    ("docs-screenshot.webp", "webp"),
    ("docs-screenshot-small.gif", "gif"),
];

/// Stores a success callback for `task_id` whose results are `urls`.
async fn put_callback(s3: &S3Server, task_id: &str, urls: &[String]) {
    let prompt_json = json!({"prompt": "a beautiful landscape"}).to_string();
    let body = json!({"code": 200, "msg": "success", "data": {
        "taskId": task_id, "promptJson": prompt_json, "resultUrls": urls}});
    s3.put_bytes(
        &format!("{PREFIX}{task_id}/callback.json"),
        body.to_string().as_bytes(),
        "application/json",
    )
    .await;
}

async fn stored_manifest(s3: &S3Server, task_id: &str) -> Manifest {
    let bytes = s3
        .get_bytes(&format!("{PREFIX}{task_id}/manifest.json"))
        .await
        .expect("manifest.json is stored");
    serde_json::from_slice(&bytes).expect("manifest.json parses")
}

/// Splits stdout into EMF documents and other lines. Panics on a line that
/// is not JSON, so it is meant for `AWS_LAMBDA_LOG_FORMAT=JSON` runs.
fn json_stdout(stdout: &str) -> (Vec<Value>, Vec<Value>) {
    let mut metrics = Vec::new();
    let mut logs = Vec::new();
    for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("stdout line is not JSON ({err}): {line}"));
        if value.get("_aws").is_some() {
            metrics.push(value);
        } else {
            logs.push(value);
        }
    }
    (metrics, logs)
}

/// Asserts the EMF envelope: namespace `MjArchive`, dimension `Function`
/// set to `function`, and a definition for each metric value in the document.
fn assert_emf_shape(document: &Value, function: &str) {
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "MjArchive", "{document}");
    assert_eq!(directive["Dimensions"], json!([["Function"]]), "{document}");
    assert_eq!(document["Function"], function, "{document}");
    assert!(document["_aws"]["Timestamp"].is_u64(), "{document}");
    for definition in directive["Metrics"].as_array().expect("a Metrics list") {
        let name = definition["Name"].as_str().expect("a metric name");
        assert!(
            document[name].is_number(),
            "{name} has no value: {document}"
        );
    }
}

/// Returns the EMF documents that contain `metric`.
fn emf_with<'a>(metrics: &'a [Value], metric: &str) -> Vec<&'a Value> {
    metrics
        .iter()
        .filter(|document| document.get(metric).is_some())
        .collect()
}

/// Returns the `fields` object of each JSON log line whose message is `message`.
fn log_fields<'a>(logs: &'a [Value], message: &str) -> Vec<&'a Value> {
    logs.iter()
        .map(|line| &line["fields"])
        .filter(|fields| fields["message"] == message)
        .collect()
}

// --------------------------------------------------------------- receiver

#[tokio::test]
async fn receiver_stores_fixture_and_keeps_serving() {
    let s3 = S3Server::start().await;
    let mut function = Function::start(RECEIVER_BIN, "mj-archive-receiver", &s3, &[]).await;
    let event = fixture("apigw-http-success.json");

    let stored = function.invoke(event.clone()).await;

    let (status, body) = http_response(&stored, &function.child.output());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "stored", "taskId": "mj_task_12345",
               "key": "midjourney/mj_task_12345/callback.json", "providerCode": 200})
    );
    let callback = s3
        .get_bytes("midjourney/mj_task_12345/callback.json")
        .await
        .expect("the callback is stored");
    assert_eq!(callback, event["body"].as_str().unwrap().as_bytes());

    let duplicate = function.invoke(event.clone()).await;
    let (status, body) = http_response(&duplicate, &function.child.output());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "duplicate");

    let get = function.invoke(fixture("apigw-http-get.json")).await;
    let (status, body) = http_response(&get, &function.child.output());
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
    assert_eq!(get.json()["headers"]["allow"], "POST");

    let url_event = function.invoke(fixture("function-url-success.json")).await;
    let (status, body) = http_response(&url_event, &function.child.output());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["taskId"], "mj_task_alias_1");

    assert_eq!(function.api.delivered(), 4);
    assert!(function.api.init_error().is_none());
    function.assert_running();
    assert_eq!(
        s3.list_keys(PREFIX).await,
        vec![
            "midjourney/mj_task_12345/callback.json",
            "midjourney/mj_task_alias_1/callback.json",
        ]
    );
}

#[tokio::test]
async fn receiver_checks_signature_and_hides_secrets() {
    let s3 = S3Server::start().await;
    let hmac_key = "test_hmac_key_for_the_binary_run";
    let token = "test_callback_token_for_the_binary_run";
    let mut function = Function::start(
        RECEIVER_BIN,
        "mj-archive-receiver",
        &s3,
        &[("WEBHOOK_HMAC_KEY", hmac_key), ("CALLBACK_TOKEN", token)],
    )
    .await;
    let body = json!({"code": 200, "msg": "success", "data": {
        "taskId": "mj_signed_1", "resultUrls": ["https://cdn.example.com/a.png"]}});
    let now = unix_now();

    let valid = function
        .invoke(signed_event(
            &body,
            "mj_signed_1",
            now,
            hmac_key,
            Some(token),
        ))
        .await;
    let (status, answer) = http_response(&valid, &function.child.output());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "stored");

    let other = json!({"code": 200, "data": {"taskId": "mj_signed_2", "resultUrls": []}});
    let wrong_key = function
        .invoke(signed_event(
            &other,
            "mj_signed_2",
            now,
            "test_some_other_key",
            Some(token),
        ))
        .await;
    let (status, answer) = http_response(&wrong_key, &function.child.output());
    assert_eq!(status, 401, "{answer}");

    let stale = function
        .invoke(signed_event(
            &other,
            "mj_signed_2",
            now - 3600,
            hmac_key,
            Some(token),
        ))
        .await;
    let (status, answer) = http_response(&stale, &function.child.output());
    assert_eq!(status, 401, "{answer}");

    let wrong_token = function
        .invoke(signed_event(
            &other,
            "mj_signed_2",
            now,
            hmac_key,
            Some("test_wrong_token"),
        ))
        .await;
    let (status, answer) = http_response(&wrong_token, &function.child.output());
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["message"], "invalid token query parameter");

    function.assert_running();
    assert!(s3
        .get_bytes("midjourney/mj_signed_1/callback.json")
        .await
        .is_some());
    assert!(s3
        .get_bytes("midjourney/mj_signed_2/callback.json")
        .await
        .is_none());
    let output = function.child.output();
    assert!(!output.contains(hmac_key), "{output}");
    assert!(!output.contains(token), "{output}");
    assert!(
        output.contains("callback rejected"),
        "the rejections are logged\n{output}"
    );
}

#[tokio::test]
async fn receiver_json_logs_and_metrics() {
    let s3 = S3Server::start().await;
    let function = Function::start(
        RECEIVER_BIN,
        "mj-archive-receiver",
        &s3,
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    )
    .await;

    let stored = function.invoke(fixture("apigw-http-success.json")).await;
    assert_eq!(http_response(&stored, &function.child.output()).0, 200);
    let get = function.invoke(fixture("apigw-http-get.json")).await;
    assert_eq!(http_response(&get, &function.child.output()).0, 405);

    let (metrics, logs) = json_stdout(&function.child.stdout());
    for document in &metrics {
        assert_emf_shape(document, "mj-archive-receiver");
    }
    let received = emf_with(&metrics, "CallbacksReceived");
    assert_eq!(received.len(), 1, "{metrics:?}");
    assert_eq!(received[0]["CallbacksReceived"], 1.0);
    assert_eq!(received[0]["CallbacksDuplicate"], 0.0);
    let rejected = emf_with(&metrics, "CallbacksRejected");
    assert_eq!(rejected.len(), 1, "{metrics:?}");
    assert_eq!(rejected[0]["CallbacksRejected"], 1.0);
    assert_eq!(rejected[0]["CallbacksFailed"], 0.0);

    let accepted = log_fields(&logs, "callback accepted");
    assert_eq!(accepted.len(), 1, "{logs:?}");
    assert_eq!(accepted[0]["task_id"], "mj_task_12345");
    assert_eq!(accepted[0]["key"], "midjourney/mj_task_12345/callback.json");
    assert_eq!(log_fields(&logs, "callback rejected").len(), 1, "{logs:?}");
    for line in &logs {
        assert!(line["level"].is_string(), "{line}");
    }
}

// --------------------------------------------------------------- archiver

#[tokio::test]
async fn archiver_handles_s3_events() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls: Vec<String> = SAMPLES
        .iter()
        .map(|(name, _)| origin.url(&format!("/files/{name}")))
        .collect();
    put_callback(&s3, "mj_bin_1", &urls).await;
    let mut function = Function::start(
        ARCHIVER_BIN,
        "mj-archive-archiver",
        &s3,
        &[("ALLOW_PRIVATE_SOURCES", "true")],
    )
    .await;

    let archived = function
        .invoke(s3_event(&s3, "midjourney/mj_bin_1/callback.json"))
        .await;

    assert!(
        archived.is_response(),
        "{archived:?}\n{}",
        function.child.output()
    );
    assert_eq!(
        archived.json(),
        json!({"archived": [{"task_id": "mj_bin_1", "status": "complete", "results": 4}],
               "ignored": []})
    );
    for (index, (name, extension)) in SAMPLES.iter().enumerate() {
        let key = format!("{PREFIX}mj_bin_1/{index}.{extension}");
        let stored = s3.get_bytes(&key).await.unwrap_or_else(|| panic!("{key}"));
        assert!(stored == data(name), "{key} differs from {name}");
    }
    assert_eq!(
        stored_manifest(&s3, "mj_bin_1").await.status,
        ArchiveStatus::Complete
    );

    let unrelated = function
        .invoke(s3_event(&s3, "midjourney/mj_bin_1/0.png"))
        .await;
    assert!(unrelated.is_response(), "{unrelated:?}");
    assert_eq!(
        unrelated.json(),
        json!({"archived": [], "ignored": ["midjourney/mj_bin_1/0.png"]})
    );

    let not_s3 = function
        .invoke(json!({"detail-type": "Scheduled Event", "detail": {}}))
        .await;
    match &not_s3 {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "NotS3Event");
            assert!(
                error_message.contains("event is not an S3 event notification"),
                "{error_message}"
            );
        }
        other => panic!("expected an error invocation, got {other:?}"),
    }

    function.assert_running();
    assert_eq!(origin.total_hits(), 4, "{:?}", origin.request_log());
}

#[tokio::test]
async fn archiver_confirms_urls_with_provider() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let api_key = "test_provider_api_key";
    let provider = ProviderStub::start(api_key);
    let listed = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/files/docs-screenshot.jpeg"),
    ];
    let injected = origin.url("/files/docs-screenshot.webp");
    provider.set_task(TaskRecord::success("mj_confirm_1", "p", &listed));
    let mut urls = listed.clone();
    urls.push(injected.clone());
    put_callback(&s3, "mj_confirm_1", &urls).await;
    let base_url = provider.base_url();
    let function = Function::start(
        ARCHIVER_BIN,
        "mj-archive-archiver",
        &s3,
        &[
            ("ALLOW_PRIVATE_SOURCES", "true"),
            ("PROVIDER_API_KEY", api_key),
            ("PROVIDER_API_BASE_URL", &base_url),
        ],
    )
    .await;

    let outcome = function
        .invoke(s3_event(&s3, "midjourney/mj_confirm_1/callback.json"))
        .await;

    assert!(
        outcome.is_response(),
        "{outcome:?}\n{}",
        function.child.output()
    );
    let manifest = stored_manifest(&s3, "mj_confirm_1").await;
    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    assert!(manifest.results[0].is_archived());
    assert!(manifest.results[1].is_archived());
    let error = manifest.results[2].error.as_ref().expect("result 2 failed");
    assert_eq!(error.kind, FailureKind::NotConfirmed);
    assert_eq!(origin.hits("/files/docs-screenshot.webp"), 0);
    let requests = provider.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer test_provider_api_key")
    );
    assert!(!function.child.output().contains(api_key));
}

#[tokio::test]
async fn archiver_stops_before_deadline() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    // 206,064 bytes in 1 KiB chunks every 200 ms takes about 40 s.
    let slow = origin.url("/drip/docs-screenshot.png?chunk=1024&interval_ms=200");
    put_callback(&s3, "mj_slow_1", &[slow]).await;
    let function = Function::start(
        ARCHIVER_BIN,
        "mj-archive-archiver",
        &s3,
        &[
            ("ALLOW_PRIVATE_SOURCES", "true"),
            ("DEADLINE_MARGIN_MS", "1000"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    )
    .await;
    let deadline = Duration::from_secs(3);

    let started = Instant::now();
    let outcome = function
        .api
        .invoke(
            s3_event(&s3, "midjourney/mj_slow_1/callback.json"),
            deadline,
        )
        .await;
    let elapsed = started.elapsed();

    match &outcome {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "ArchiveIncomplete");
            assert!(
                error_message.contains("task mj_slow_1: 1 of 1 results are not archived yet"),
                "{error_message}"
            );
        }
        other => panic!(
            "expected an error invocation, got {other:?}\n{}",
            function.child.output()
        ),
    }
    assert!(elapsed < deadline, "the outcome came after {elapsed:?}");
    let manifest = stored_manifest(&s3, "mj_slow_1").await;
    assert_eq!(manifest.status, ArchiveStatus::Incomplete);
    let error = manifest.results[0].error.as_ref().expect("result 0 failed");
    assert_eq!(error.kind, FailureKind::Deadline);
    assert!(s3.head("midjourney/mj_slow_1/0.png").await.is_none());
    assert!(s3.list_multipart_uploads().await.is_empty());

    let (metrics, _logs) = json_stdout(&function.child.stdout());
    let settled = emf_with(&metrics, "TasksIncomplete");
    assert_eq!(settled.len(), 1, "{metrics:?}");
    assert_eq!(settled[0]["TasksIncomplete"], 1.0);
}

#[tokio::test]
async fn archiver_json_logs_and_metrics() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls: Vec<String> = SAMPLES
        .iter()
        .map(|(name, _)| origin.url(&format!("/files/{name}")))
        .collect();
    put_callback(&s3, "mj_logs_1", &urls).await;
    let function = Function::start(
        ARCHIVER_BIN,
        "mj-archive-archiver",
        &s3,
        &[
            ("ALLOW_PRIVATE_SOURCES", "true"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    )
    .await;

    let outcome = function
        .invoke(s3_event(&s3, "midjourney/mj_logs_1/callback.json"))
        .await;
    assert!(
        outcome.is_response(),
        "{outcome:?}\n{}",
        function.child.output()
    );

    let (metrics, logs) = json_stdout(&function.child.stdout());
    for document in &metrics {
        assert_emf_shape(document, "mj-archive-archiver");
    }
    let results = emf_with(&metrics, "ResultsArchived");
    assert_eq!(results.len(), 4, "{metrics:?}");
    let mut archived_bytes: Vec<f64> = results
        .iter()
        .map(|document| {
            assert_eq!(document["ResultsArchived"], 1.0, "{document}");
            assert_eq!(document["ResultsFailed"], 0.0, "{document}");
            document["BytesArchived"].as_f64().expect("a byte count")
        })
        .collect();
    archived_bytes.sort_by(f64::total_cmp);
    let mut expected_bytes: Vec<f64> = SAMPLES
        .iter()
        .map(|(name, _)| data(name).len() as f64)
        .collect();
    expected_bytes.sort_by(f64::total_cmp);
    assert_eq!(archived_bytes, expected_bytes);
    let settled = emf_with(&metrics, "ArchiveDuration");
    assert_eq!(settled.len(), 1, "{metrics:?}");
    assert_eq!(settled[0]["TasksIncomplete"], 0.0);

    let archived = log_fields(&logs, "result archived");
    assert_eq!(archived.len(), 4, "{logs:?}");
    for fields in archived {
        assert_eq!(fields["task_id"], "mj_logs_1", "{fields}");
        assert!(fields["key"]
            .as_str()
            .unwrap()
            .starts_with("midjourney/mj_logs_1/"));
        assert!(fields["bytes"].is_u64(), "{fields}");
        assert!(fields["elapsed_ms"].is_u64(), "{fields}");
    }
    let finished = log_fields(&logs, "task archive finished");
    assert_eq!(finished.len(), 1, "{logs:?}");
    assert_eq!(finished[0]["task_id"], "mj_logs_1");
}

// ------------------------------------------------------- configuration

/// Starts `program` with `extra` (and without the variables in `remove`)
/// and returns its exit code and stderr once it exits.
async fn start_with_bad_config(
    program: &str,
    s3: &S3Server,
    extra: &[(&str, &str)],
    remove: &[&str],
) -> (Option<i32>, String) {
    let api = RuntimeApi::start().await;
    let mut env = function_env("mj-archive-config-test", &api, s3, extra);
    env.retain(|(variable, _)| !remove.contains(&variable.as_str()));
    let mut child = ChildGuard::spawn(program, &[] as &[&str], &env);

    let Some(status) = child.wait_timeout(CONFIG_EXIT_TIMEOUT).await else {
        panic!(
            "{program} still runs after {CONFIG_EXIT_TIMEOUT:?}\n{}",
            child.output()
        );
    };
    assert_eq!(api.delivered(), 0);
    let init_error = api
        .init_error()
        .unwrap_or_else(|| panic!("{program} reported no init error"));
    assert_eq!(init_error.error_type, "Runtime.ConfigError");
    assert!(
        child.stderr().contains(&init_error.error_message),
        "init error {:?} differs from stderr {}",
        init_error.error_message,
        child.stderr()
    );
    (status.code(), child.stderr())
}

#[tokio::test]
async fn bad_part_size_stops_archiver() {
    let s3 = S3Server::start().await;

    let (code, stderr) =
        start_with_bad_config(ARCHIVER_BIN, &s3, &[("PART_SIZE_BYTES", "1")], &[]).await;

    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "invalid PART_SIZE_BYTES=\"1\": expected an integer from 5242880 to 536870912 (default 8388608)"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_body_limit_stops_receiver() {
    let s3 = S3Server::start().await;

    let (code, stderr) =
        start_with_bad_config(RECEIVER_BIN, &s3, &[("MAX_CALLBACK_BYTES", "1")], &[]).await;

    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "invalid MAX_CALLBACK_BYTES=\"1\": expected an integer from 1024 to 6291456 (default 262144)"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn missing_bucket_stops_both_functions() {
    let s3 = S3Server::start().await;

    for program in [RECEIVER_BIN, ARCHIVER_BIN] {
        let (code, stderr) = start_with_bad_config(program, &s3, &[], &["BUCKET_NAME"]).await;

        assert_eq!(code, Some(2), "{program}: {stderr}");
        assert!(
            stderr.contains(
                "invalid BUCKET_NAME=\"\": expected the name of the S3 bucket (the variable is required)"
            ),
            "{program}: {stderr}"
        );
    }
}
