//! The real `mj-archive` binary against a real S3-compatible server, a real
//! HTTP origin and a stand-in for the provider's task-details API, all on
//! 127.0.0.1.

mod provider_stub;
mod support;

use std::time::Duration;

use mj_archive::manifest::{ArchiveStatus, FailureKind, Manifest};
use provider_stub::{ProviderStub, TaskRecord, RECORD_INFO_PATH};
use serde_json::{json, Value};
use support::origin::{generated_sha256, Origin};
use support::process::{ChildGuard, CLI_BIN};
use support::s3::S3Server;
use support::{data, sha256_hex};

const PREFIX: &str = "midjourney/";
/// An obviously fake provider API key.
const API_KEY: &str = "test_provider_api_key";
/// Maximum wait for one command. The 90 MB fetch takes several seconds in a debug build.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The sample files in result order, with the extension and Content-Type
/// the archive must give each.
const SAMPLES: [(&str, &str, &str); 4] = [
    ("docs-screenshot.png", "png", "image/png"),
    ("docs-screenshot.jpeg", "jpeg", "image/jpeg"),
    ("docs-screenshot.webp", "webp", "image/webp"),
    ("docs-screenshot-small.gif", "gif", "image/gif"),
];

/// Exit status and captured output of one finished command.
struct CommandOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl CommandOutput {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `mj-archive` with `args` and exactly `env` (plus PATH and HOME).
async fn run_cli(args: &[&str], env: &[(String, String)]) -> CommandOutput {
    let mut child = ChildGuard::spawn(CLI_BIN, args, env);
    let Some(status) = child.wait_timeout(COMMAND_TIMEOUT).await else {
        panic!(
            "mj-archive {args:?} did not exit within {COMMAND_TIMEOUT:?}\n{}",
            child.output()
        );
    };
    CommandOutput {
        code: status.code(),
        stdout: child.stdout(),
        stderr: child.stderr(),
    }
}

/// S3 settings plus the key prefix and loopback sources.
fn base_env(s3: &S3Server) -> Vec<(String, String)> {
    let mut env = s3.env();
    env.push(("KEY_PREFIX".to_owned(), PREFIX.to_owned()));
    env.push(("ALLOW_PRIVATE_SOURCES".to_owned(), "true".to_owned()));
    env
}

/// `base_env` plus the provider's API at `provider` with `api_key`.
fn provider_env(s3: &S3Server, provider: &ProviderStub, api_key: &str) -> Vec<(String, String)> {
    let mut env = base_env(s3);
    env.push(("PROVIDER_API_BASE_URL".to_owned(), provider.base_url()));
    env.push(("PROVIDER_API_KEY".to_owned(), api_key.to_owned()));
    env
}

fn sample_urls(origin: &Origin) -> Vec<String> {
    SAMPLES
        .iter()
        .map(|(name, _, _)| origin.url(&format!("/files/{name}")))
        .collect()
}

/// A provider callback body with `prompt` in `promptJson`.
fn callback_body(task_id: &str, prompt: &str, urls: &[String]) -> Vec<u8> {
    let prompt_json = json!({"prompt": prompt, "model": "midjourney"}).to_string();
    json!({"code": 200, "msg": "success", "data": {
        "taskId": task_id, "promptJson": prompt_json, "resultUrls": urls}})
    .to_string()
    .into_bytes()
}

async fn put_callback(s3: &S3Server, task_id: &str, body: &[u8]) {
    s3.put_bytes(
        &format!("{PREFIX}{task_id}/callback.json"),
        body,
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

/// Asserts that every sample is stored under the task, byte-identical and
/// with its Content-Type.
async fn assert_samples_archived(s3: &S3Server, task_id: &str) {
    for (index, (name, extension, content_type)) in SAMPLES.iter().enumerate() {
        let key = format!("{PREFIX}{task_id}/{index}.{extension}");
        let stored = s3
            .get_bytes(&key)
            .await
            .unwrap_or_else(|| panic!("{key} is missing"));
        assert!(stored == data(name), "{key} differs from {name}");
        let head = s3.head(&key).await.expect("the object exists");
        assert_eq!(head.content_type.as_deref(), Some(*content_type), "{key}");
    }
}

// ------------------------------------------------------------------ fetch

#[tokio::test]
async fn fetch_archives_successful_task() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let provider = ProviderStub::start(API_KEY);
    let prompt = "a lighthouse at dusk";
    provider.set_task(TaskRecord::success(
        "mj_fetch_1",
        prompt,
        &sample_urls(&origin),
    ));

    let output = run_cli(
        &["fetch", "mj_fetch_1"],
        &provider_env(&s3, &provider, API_KEY),
    )
    .await;

    assert_eq!(output.code, Some(0), "{}", output.describe());
    assert!(
        output
            .stderr
            .contains("archiving 4 results of task mj_fetch_1"),
        "{}",
        output.describe()
    );
    assert!(
        output.stdout.contains("status    complete"),
        "{}",
        output.describe()
    );
    assert_samples_archived(&s3, "mj_fetch_1").await;
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_fetch_1/")).await,
        vec![
            "midjourney/mj_fetch_1/0.png",
            "midjourney/mj_fetch_1/1.jpeg",
            "midjourney/mj_fetch_1/2.webp",
            "midjourney/mj_fetch_1/3.gif",
            "midjourney/mj_fetch_1/manifest.json",
        ]
    );

    let manifest = stored_manifest(&s3, "mj_fetch_1").await;
    assert_eq!(manifest.source, "provider_api");
    assert_eq!(manifest.status, ArchiveStatus::Complete);
    assert_eq!(
        manifest.prompt,
        Some(json!({"prompt": prompt, "model": "midjourney"}))
    );
    assert_eq!(manifest.results.len(), 4);

    let requests = provider.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, RECORD_INFO_PATH);
    assert_eq!(requests[0].task_id.as_deref(), Some("mj_fetch_1"));
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer test_provider_api_key")
    );
    assert!(!output.stdout.contains(API_KEY), "{}", output.describe());
    assert!(!output.stderr.contains(API_KEY), "{}", output.describe());
}

#[tokio::test]
async fn fetch_generating_task_exits_3() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);
    provider.set_task(TaskRecord::generating("mj_gen_1", "still drawing"));

    let output = run_cli(
        &["fetch", "mj_gen_1"],
        &provider_env(&s3, &provider, API_KEY),
    )
    .await;

    assert_eq!(output.code, Some(3), "{}", output.describe());
    assert!(
        output.stderr.contains("task mj_gen_1 is still generating"),
        "{}",
        output.describe()
    );
    assert!(
        output
            .stderr
            .contains("run `mj-archive fetch mj_gen_1` again"),
        "{}",
        output.describe()
    );
    assert_eq!(provider.request_count(), 1);
    assert_eq!(
        s3.write_requests().len(),
        1,
        "only the bucket creation wrote: {:?}",
        s3.write_requests()
    );
    assert!(s3.list_keys("").await.is_empty());
}

#[tokio::test]
async fn fetch_failed_task_exits_4() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);
    let env = provider_env(&s3, &provider, API_KEY);

    for (task_id, flag, message) in [
        ("mj_fail_2", 2, "Content moderation rejected the prompt"),
        ("mj_fail_3", 3, "Generation failed: upstream timeout"),
    ] {
        provider.set_task(TaskRecord::failed(task_id, flag, message));

        let output = run_cli(&["fetch", task_id], &env).await;

        assert_eq!(output.code, Some(4), "{}", output.describe());
        assert!(
            output
                .stderr
                .contains(&format!("task {task_id} failed at the provider")),
            "{}",
            output.describe()
        );
        assert!(
            output.stderr.contains(&format!("successFlag {flag}")),
            "{}",
            output.describe()
        );
        assert!(output.stderr.contains(message), "{}", output.describe());
    }
    assert_eq!(s3.write_requests().len(), 1, "{:?}", s3.write_requests());
}

#[tokio::test]
async fn fetch_without_api_key_exits_2() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);
    let mut env = base_env(&s3);
    env.push(("PROVIDER_API_BASE_URL".to_owned(), provider.base_url()));

    let output = run_cli(&["fetch", "mj_fetch_1"], &env).await;

    assert_eq!(output.code, Some(2), "{}", output.describe());
    assert!(
        output.stderr.contains("PROVIDER_API_KEY is not set"),
        "{}",
        output.describe()
    );
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test]
async fn fetch_with_rejected_key_fails() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);
    provider.set_task(TaskRecord::generating("mj_fetch_1", "p"));
    let wrong_key = "test_wrong_provider_key";

    let output = run_cli(
        &["fetch", "mj_fetch_1"],
        &provider_env(&s3, &provider, wrong_key),
    )
    .await;

    assert_eq!(output.code, Some(1), "{}", output.describe());
    assert!(
        output
            .stderr
            .contains("the provider's API rejected PROVIDER_API_KEY (HTTP 401)"),
        "{}",
        output.describe()
    );
    assert!(!output.stderr.contains(wrong_key), "{}", output.describe());
    let requests = provider.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer test_wrong_provider_key")
    );
    assert_eq!(s3.write_requests().len(), 1, "{:?}", s3.write_requests());
}

#[tokio::test]
async fn fetch_invalid_task_id_exits_2() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);

    let output = run_cli(&["fetch", "../x"], &provider_env(&s3, &provider, API_KEY)).await;

    assert_eq!(output.code, Some(2), "{}", output.describe());
    assert!(
        output.stderr.contains("invalid task id"),
        "{}",
        output.describe()
    );
    assert_eq!(provider.request_count(), 0);
    assert_eq!(s3.write_requests().len(), 1, "{:?}", s3.write_requests());
}

#[tokio::test]
async fn fetch_unknown_task_reports_provider_code() {
    let s3 = S3Server::start().await;
    let provider = ProviderStub::start(API_KEY);

    let output = run_cli(
        &["fetch", "mj_unknown_1"],
        &provider_env(&s3, &provider, API_KEY),
    )
    .await;

    assert_eq!(output.code, Some(1), "{}", output.describe());
    assert!(
        output
            .stderr
            .contains("the provider's API answered code 422 for task mj_unknown_1: task not found"),
        "{}",
        output.describe()
    );
    assert_eq!(provider.request_count(), 1);
    assert_eq!(s3.write_requests().len(), 1, "{:?}", s3.write_requests());
}

#[tokio::test]
async fn fetch_large_result_reports_progress() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let provider = ProviderStub::start(API_KEY);
    // NOTE: the uploader logs `upload progress` once every 8 parts, so a
    // 70 MB result in 8 MiB parts gets a single line. 90 MB in 5 MiB parts
    // is 18 parts, which gives lines at parts 8 and 16.
    let len: u64 = 90_000_000;
    let url = origin.url(&format!("/generated/{len}?type=video/mp4"));
    provider.set_task(TaskRecord::success("mj_large_1", "a long video", &[url]));
    let mut env = provider_env(&s3, &provider, API_KEY);
    env.push(("PART_SIZE_BYTES".to_owned(), (5 * 1024 * 1024).to_string()));

    let output = run_cli(&["fetch", "mj_large_1"], &env).await;

    assert_eq!(output.code, Some(0), "{}", output.describe());
    assert!(
        !output.stderr.contains('\u{1b}'),
        "stderr is a file, so it must carry no color codes\n{}",
        output.describe()
    );
    let progress: Vec<u64> = output
        .stderr
        .lines()
        .filter(|line| line.contains("upload progress"))
        .map(|line| {
            field_value(line, "bytes")
                .unwrap_or_else(|| panic!("no bytes field in {line:?}"))
                .parse()
                .unwrap_or_else(|err| panic!("bytes is not a number in {line:?}: {err}"))
        })
        .collect();
    assert!(progress.len() >= 2, "{progress:?}\n{}", output.describe());
    assert!(
        progress.windows(2).all(|pair| pair[0] < pair[1]),
        "bytes must grow: {progress:?}"
    );
    assert!(progress.iter().all(|bytes| *bytes <= len), "{progress:?}");

    let key = "midjourney/mj_large_1/0.mp4";
    let head = s3.head(key).await.expect("the video is archived");
    assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(head.content_length, Some(len as i64));
    let stored = s3.get_bytes(key).await.unwrap();
    assert_eq!(sha256_hex(&stored), generated_sha256(len, 0));
}

/// Returns the value of `name=value` in a tracing text line.
fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}=");
    let start = line.find(&pattern)? + pattern.len();
    line[start..].split_whitespace().next()
}

// ----------------------------------------------------------------- replay

#[tokio::test]
async fn replay_archives_stored_callback_once() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    put_callback(
        &s3,
        "mj_replay_1",
        &callback_body("mj_replay_1", "a quiet harbor", &sample_urls(&origin)),
    )
    .await;
    let env = base_env(&s3);

    let first = run_cli(&["replay", "mj_replay_1"], &env).await;

    assert_eq!(first.code, Some(0), "{}", first.describe());
    assert_samples_archived(&s3, "mj_replay_1").await;
    let manifest = stored_manifest(&s3, "mj_replay_1").await;
    assert_eq!(manifest.source, "callback");
    assert_eq!(manifest.status, ArchiveStatus::Complete);
    let hits_after_first = origin.total_hits();
    assert_eq!(hits_after_first, 4, "{:?}", origin.request_log());

    let second = run_cli(&["replay", "mj_replay_1"], &env).await;

    assert_eq!(second.code, Some(0), "{}", second.describe());
    assert_eq!(
        origin.total_hits(),
        hits_after_first,
        "the second replay downloaded again: {:?}",
        origin.request_log()
    );
    assert!(
        second.stderr.contains("result already archived"),
        "{}",
        second.describe()
    );
    assert_samples_archived(&s3, "mj_replay_1").await;
}

#[tokio::test]
async fn replay_without_callback_fails() {
    let s3 = S3Server::start().await;

    let output = run_cli(&["replay", "mj_missing_1"], &base_env(&s3)).await;

    assert_eq!(output.code, Some(1), "{}", output.describe());
    assert!(
        output.stderr.contains(
            "no stored callback at s3://mj-archive-test/midjourney/mj_missing_1/callback.json"
        ),
        "{}",
        output.describe()
    );
}

// ----------------------------------------------------------------- status

#[tokio::test]
async fn status_lists_results_and_prints_json() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/files/docs-screenshot.jpeg"),
    ];
    put_callback(
        &s3,
        "mj_status_1",
        &callback_body("mj_status_1", "two birds", &urls),
    )
    .await;
    let env = base_env(&s3);
    let replay = run_cli(&["replay", "mj_status_1"], &env).await;
    assert_eq!(replay.code, Some(0), "{}", replay.describe());

    let text = run_cli(&["status", "mj_status_1"], &env).await;

    assert_eq!(text.code, Some(0), "{}", text.describe());
    assert!(
        text.stdout.contains("task      mj_status_1\n"),
        "{}",
        text.describe()
    );
    assert!(
        text.stdout.contains("prompt    two birds\n"),
        "{}",
        text.describe()
    );
    assert!(text.stdout.contains("results   2\n"), "{}", text.describe());
    for line in [
        "[0] s3://mj-archive-test/midjourney/mj_status_1/0.png  image/png  201.2 KiB  sha256 ",
        "[1] s3://mj-archive-test/midjourney/mj_status_1/1.jpeg  image/jpeg  168.6 KiB  sha256 ",
    ] {
        assert!(text.stdout.contains(line), "{line}\n{}", text.describe());
    }

    let json_output = run_cli(&["status", "mj_status_1", "--json"], &env).await;

    assert_eq!(json_output.code, Some(0), "{}", json_output.describe());
    let manifest: Value = serde_json::from_str(&json_output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err})\n{}", json_output.describe()));
    assert_eq!(manifest["task_id"], "mj_status_1");
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["source"], "callback");
    assert_eq!(
        manifest["results"][0]["key"],
        "midjourney/mj_status_1/0.png"
    );
    assert_eq!(manifest["results"][0]["bytes"], 206_064);
    assert_eq!(
        manifest["results"][0]["sha256"],
        sha256_hex(&data("docs-screenshot.png"))
    );
    assert_eq!(
        manifest["results"][1]["key"],
        "midjourney/mj_status_1/1.jpeg"
    );
    assert_eq!(manifest["results"][1]["content_type"], "image/jpeg");
    assert_eq!(manifest["results"][1]["bytes"], 172_696);
}

#[tokio::test]
async fn status_of_unknown_task_exits_1() {
    let s3 = S3Server::start().await;

    let output = run_cli(&["status", "mj_nothing_1"], &base_env(&s3)).await;

    assert_eq!(output.code, Some(1), "{}", output.describe());
    assert!(
        output.stderr.contains(
            "no manifest or callback for task mj_nothing_1 under s3://mj-archive-test/midjourney/"
        ),
        "{}",
        output.describe()
    );
    assert!(output.stdout.is_empty(), "{}", output.describe());
}

#[tokio::test]
async fn status_of_unarchived_callback_suggests_replay() {
    let s3 = S3Server::start().await;
    put_callback(
        &s3,
        "mj_waiting_1",
        &callback_body(
            "mj_waiting_1",
            "p",
            &["https://cdn.example.com/a.png".into()],
        ),
    )
    .await;

    let output = run_cli(&["status", "mj_waiting_1"], &base_env(&s3)).await;

    assert_eq!(output.code, Some(1), "{}", output.describe());
    assert!(
        output
            .stderr
            .contains("the callback is stored but not archived"),
        "{}",
        output.describe()
    );
    assert!(
        output
            .stderr
            .contains("run `mj-archive replay mj_waiting_1`"),
        "{}",
        output.describe()
    );
}

// ---------------------------------------------------------------- gallery

#[tokio::test]
async fn gallery_links_download_archived_bytes() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/status/404"),
        origin.url("/files/docs-screenshot-small.gif"),
    ];
    let prompt = "a <red> & \"blue\" fox";
    put_callback(
        &s3,
        "mj_gallery_1",
        &callback_body("mj_gallery_1", prompt, &urls),
    )
    .await;
    let env = base_env(&s3);
    // One result fails permanently, so replay reports the task as not
    // complete and exits 1; the other results are archived.
    let replay = run_cli(&["replay", "mj_gallery_1"], &env).await;
    assert_eq!(replay.code, Some(1), "{}", replay.describe());
    let manifest = stored_manifest(&s3, "mj_gallery_1").await;
    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    let failure = manifest.results[1].error.clone().expect("result 1 failed");
    assert_eq!(failure.kind, FailureKind::HttpStatus);

    let directory = tempfile::tempdir().unwrap();
    let page = directory.path().join("gallery.html");
    let page_arg = page.to_str().unwrap();
    let output = run_cli(
        &[
            "gallery",
            "mj_gallery_1",
            "-o",
            page_arg,
            "--expires",
            "120",
        ],
        &env,
    )
    .await;

    assert_eq!(output.code, Some(0), "{}", output.describe());
    assert!(
        output.stdout.contains(&format!(
            "wrote {page_arg} (3 results, links valid for 120 s)"
        )),
        "{}",
        output.describe()
    );
    let html = std::fs::read_to_string(&page).expect("the gallery page is written");
    assert!(
        html.contains("<strong>Prompt:</strong> a &lt;red&gt; &amp; &quot;blue&quot; fox</p>"),
        "{html}"
    );
    assert!(!html.contains("<red>"), "{html}");
    assert!(
        html.contains(&format!(
            "<figure class=\"failed\"><figcaption>#1 : {}",
            html_escape(&failure.message)
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!("<code>{}</code>", html_escape(&urls[1]))),
        "{html}"
    );

    let links = anchor_links(&html);
    assert_eq!(links.len(), 2, "one link per archived result: {links:?}");
    let client = reqwest::Client::new();
    for (link, (key, sample)) in links.iter().zip([
        ("midjourney/mj_gallery_1/0.png", "docs-screenshot.png"),
        ("midjourney/mj_gallery_1/2.gif", "docs-screenshot-small.gif"),
    ]) {
        assert!(
            link.starts_with(&format!("{}/mj-archive-test/{key}?", s3.endpoint())),
            "{link}"
        );
        assert!(link.contains("X-Amz-Expires=120"), "{link}");
        assert!(link.contains("X-Amz-Signature="), "{link}");

        let response = client.get(link).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{link}");
        let body = response.bytes().await.unwrap();
        assert!(body.as_ref() == data(sample), "{link} returned other bytes");
        assert!(
            body.as_ref() == s3.get_bytes(key).await.unwrap().as_slice(),
            "{key}"
        );
    }

    let tampered = links[0].replace("X-Amz-Expires=120", "X-Amz-Expires=121");
    let response = client.get(&tampered).send().await.unwrap();
    assert_eq!(
        response.status(),
        reqwest::StatusCode::FORBIDDEN,
        "a changed link must fail SigV4"
    );
}

/// Returns the `href` of every `<a>` element, with `&amp;` turned back into `&`.
fn anchor_links(html: &str) -> Vec<String> {
    html.split("<a href=\"")
        .skip(1)
        .map(|rest| {
            let end = rest.find('"').expect("the href is closed");
            rest[..end].replace("&amp;", "&")
        })
        .collect()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

// ------------------------------------------------------------------- sign

const SIGN_ARGS: [&str; 5] = [
    "sign",
    "--task-id",
    "mj_task_12345",
    "--timestamp",
    "1700000000",
];
/// The known-answer signature for `test_webhook_hmac_key`, `mj_task_12345` and
/// 1700000000; `events/apigw-http-success.json` carries the same signature.
const SIGN_OUTPUT: &str = "X-Webhook-Timestamp: 1700000000\n\
                           X-Webhook-Signature: iJevCZ4VzMVEvJeXclTfHd5SXWsbVx0bs6b2d5frLhg=\n";

#[tokio::test]
async fn sign_prints_known_answer() {
    let mut args = SIGN_ARGS.to_vec();
    args.extend(["--key", "test_webhook_hmac_key"]);

    let output = run_cli(&args, &[]).await;

    assert_eq!(output.code, Some(0), "{}", output.describe());
    assert_eq!(output.stdout, SIGN_OUTPUT);
}

#[tokio::test]
async fn sign_reads_key_from_environment() {
    let env = [(
        "WEBHOOK_HMAC_KEY".to_owned(),
        "test_webhook_hmac_key".to_owned(),
    )];

    let output = run_cli(&SIGN_ARGS, &env).await;

    assert_eq!(output.code, Some(0), "{}", output.describe());
    assert_eq!(output.stdout, SIGN_OUTPUT);
}

#[tokio::test]
async fn sign_without_key_exits_2() {
    let output = run_cli(&SIGN_ARGS, &[]).await;

    assert_eq!(output.code, Some(2), "{}", output.describe());
    assert!(output.stderr.contains("--key"), "{}", output.describe());
    assert!(output.stdout.is_empty(), "{}", output.describe());
}

#[tokio::test]
async fn help_never_shows_the_key() {
    let secret = "test_hmac_key_that_must_stay_hidden";
    let env = [("WEBHOOK_HMAC_KEY".to_owned(), secret.to_owned())];

    for args in [
        &["sign", "--help"][..],
        &["sign", "-h"],
        &["--help"],
        &["help", "sign"],
    ] {
        let output = run_cli(args, &env).await;

        assert_eq!(output.code, Some(0), "{args:?}\n{}", output.describe());
        assert!(
            output.stdout.contains("Usage: mj-archive"),
            "{args:?}\n{}",
            output.describe()
        );
        assert!(
            !output.stdout.contains(secret),
            "{args:?}\n{}",
            output.describe()
        );
        assert!(
            !output.stderr.contains(secret),
            "{args:?}\n{}",
            output.describe()
        );
    }
}
