//! Fault tolerance: S3 down during receive, sources that cut or drip their
//! bodies, an archiver killed mid-upload, duplicate deliveries across
//! processes and two archivers on one task.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mj_archive::archive::{ArchiveError, Archiver, RunOptions, TaskSource};
use mj_archive::callback::{Callback, CallbackLimits};
use mj_archive::config::{RetryConfig, TransferConfig};
use mj_archive::keys::KeyLayout;
use mj_archive::manifest::{ArchiveStatus, FailureKind, Manifest};
use mj_archive::metrics::Metrics;
use mj_archive::secret::Secret;
use mj_archive::signature::sign;
use mj_archive::source_guard::SourcePolicy;
use mj_archive::store::Store;
use mj_archive::task_id::TaskId;
use serde_json::{json, Value};
use support::origin::{generated_bytes, generated_sha256, Origin};
use support::process::{ChildGuard, ARCHIVER_BIN, RECEIVER_BIN};
use support::runtime_api::{lambda_env, Invocation, RuntimeApi};
use support::s3::S3Server;
use support::{data, sha256_hex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const PREFIX: &str = "midjourney/";
const MIB: usize = 1024 * 1024;
const HMAC_KEY: &str = "test_webhook_hmac_key";

// ------------------------------------------------------------ scripted origin

/// How a scripted response sends its body.
#[derive(Clone)]
enum Delivery {
    All,
    /// Closes the connection 100 ms after sending this many body bytes.
    CloseAfter(usize),
    /// Sends `after` body bytes, then closes the connection once `ready`
    /// returns true (polled every 10 ms, for at most 30 s).
    CloseWhen {
        after: usize,
        ready: Arc<dyn Fn() -> bool + Send + Sync>,
    },
    /// Sends this many body bytes, then sends nothing more until the client leaves.
    StallAfter(usize),
    /// Sends `chunk` bytes every `interval`.
    Drip {
        chunk: usize,
        interval: Duration,
    },
}

/// One response of the scripted origin: 200 with `body` as `video/mp4`.
#[derive(Clone)]
struct Plan {
    body: Bytes,
    chunked: bool,
    delivery: Delivery,
}

/// An origin whose response depends on the request number (1 for the first),
/// for faults that the shared origin cannot switch off between runs. It
/// serves every path the same way and closes each connection after one response.
struct ScriptedOrigin {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl ScriptedOrigin {
    async fn start(script: impl Fn(usize) -> Plan + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let counter = hits.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let plan = script(counter.fetch_add(1, Ordering::SeqCst) + 1);
                // A write fails when the client leaves, which ends the response.
                tokio::spawn(async move {
                    let _ = respond(stream, plan).await;
                });
            }
        });
        ScriptedOrigin {
            address,
            hits,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn respond(mut stream: TcpStream, plan: Plan) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
    }

    let length = if plan.chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {}", plan.body.len())
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\n{length}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;

    let (limit, chunk, interval) = match plan.delivery {
        Delivery::All => (plan.body.len(), 64 * 1024, Duration::ZERO),
        Delivery::CloseAfter(n)
        | Delivery::CloseWhen { after: n, .. }
        | Delivery::StallAfter(n) => (n, 64 * 1024, Duration::ZERO),
        Delivery::Drip { chunk, interval } => (plan.body.len(), chunk, interval),
    };
    for (i, piece) in plan.body[..limit].chunks(chunk).enumerate() {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        if plan.chunked {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            stream.write_all(piece).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all(piece).await?;
        }
        stream.flush().await?;
    }

    match plan.delivery {
        Delivery::CloseAfter(_) => {
            // Let the client read what was sent before the connection closes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        Delivery::CloseWhen { ready, .. } => {
            let started = Instant::now();
            while !ready() && started.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
        Delivery::StallAfter(_) => {
            // Ends when the client closes the connection (read returns 0 or fails).
            let _ = tokio::time::timeout(Duration::from_secs(120), stream.read(&mut buffer)).await;
            Ok(())
        }
        Delivery::All | Delivery::Drip { .. } => {
            if plan.chunked {
                stream.write_all(b"0\r\n\r\n").await?;
            }
            stream.flush().await
        }
    }
}

// -------------------------------------------------------------------- helpers

fn transfer(max_attempts: usize) -> TransferConfig {
    TransferConfig {
        part_size: 5 * MIB,
        retry: RetryConfig {
            max_attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        },
        read_timeout: Duration::from_secs(10),
        deadline_margin: Duration::from_millis(200),
        ..TransferConfig::default()
    }
}

fn archiver(s3: &S3Server, transfer: TransferConfig) -> Archiver {
    Archiver::new(
        Store::new(s3.client(), s3.bucket()),
        KeyLayout::new(PREFIX).unwrap(),
        CallbackLimits::default(),
        transfer,
        SourcePolicy {
            allow_private: true,
            ..SourcePolicy::default()
        },
        None,
        Metrics::disabled(),
    )
    .unwrap()
}

fn callback_body(task_id: &str, urls: &[String]) -> Vec<u8> {
    json!({"code": 200, "msg": "success", "data": {"taskId": task_id, "resultUrls": urls}})
        .to_string()
        .into_bytes()
}

async fn store_callback(s3: &S3Server, task_id: &str, urls: &[String]) {
    s3.put_bytes(
        &format!("{PREFIX}{task_id}/callback.json"),
        &callback_body(task_id, urls),
        "application/json",
    )
    .await;
}

async fn stored_manifest(s3: &S3Server, task_id: &str) -> Manifest {
    let bytes = s3
        .get_bytes(&format!("{PREFIX}{task_id}/manifest.json"))
        .await
        .expect("manifest.json is stored");
    serde_json::from_slice(&bytes).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Builds an API Gateway HTTP API event carrying `body`, signed now for `task_id`.
fn signed_http_event(body: &[u8], task_id: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut event = fixture("apigw-http-success.json");
    event["body"] = json!(std::str::from_utf8(body).unwrap());
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["headers"]["x-webhook-timestamp"] = json!(now.to_string());
    event["headers"]["x-webhook-signature"] = json!(sign(&Secret::new(HMAC_KEY), task_id, now));
    event
}

fn s3_event(s3: &S3Server, key: &str) -> Value {
    let mut event = fixture("s3-callback-created.json");
    event["Records"][0]["s3"]["bucket"]["name"] = json!(s3.bucket());
    event["Records"][0]["s3"]["object"]["key"] = json!(key);
    event
}

/// Returns the `statusCode` and parsed `body` of a lambda_http response.
fn http_answer(outcome: &Invocation) -> (u64, Value) {
    let response = outcome.json();
    let body = response["body"].as_str().expect("the response has a body");
    (
        response["statusCode"].as_u64().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

/// Counts requests with `method` to exactly `/{bucket}/{key}`.
fn requests_to(s3: &S3Server, method: &str, key: &str) -> usize {
    let path = format!("/{}/{key}", s3.bucket());
    s3.request_log()
        .iter()
        .filter(|(m, p)| m == method && *p == path)
        .count()
}

fn function_env(
    function: &str,
    api: &RuntimeApi,
    s3_env: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut env = lambda_env(function, &api.address());
    env.extend(s3_env);
    env.push(("KEY_PREFIX".into(), PREFIX.into()));
    env
}

// ---------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_answers_503_when_s3_refuses_connections() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let api = RuntimeApi::start().await;
    let s3_env = [
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "MJARCHIVETESTACCESSKEY"),
        ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("BUCKET_NAME", "mj-archive-test"),
        ("WEBHOOK_HMAC_KEY", HMAC_KEY),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .to_vec();
    let mut receiver = ChildGuard::spawn(
        RECEIVER_BIN,
        &[] as &[&str],
        &function_env("mj-archive-receiver", &api, s3_env),
    );
    assert!(
        api.wait_for_pollers(1, Duration::from_secs(30)).await,
        "{}",
        receiver.output()
    );
    let body = callback_body("mj_s3_down", &[]);

    for attempt in 1..=2 {
        let started = Instant::now();
        let outcome = api
            .invoke(
                signed_http_event(&body, "mj_s3_down"),
                Duration::from_secs(15),
            )
            .await;
        let elapsed = started.elapsed();

        let (status, answer) = http_answer(&outcome);
        assert_eq!(status, 503, "attempt {attempt}: {answer}");
        assert_eq!(answer["error"], "storage_unavailable");
        assert!(
            elapsed < Duration::from_secs(15),
            "attempt {attempt}: answered after {elapsed:?}, past the provider's 15 s"
        );
        assert!(!answer.to_string().contains(HMAC_KEY));
        assert_eq!(receiver.try_wait(), None, "{}", receiver.output());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_leave_nothing_and_rerun_completes() {
    let s3 = Arc::new(S3Server::start().await);
    let body = Bytes::from(generated_bytes(6 * MIB as u64 + 4321, 3));
    let script_body = body.clone();
    let key = format!("{PREFIX}mj_cut/0.mp4");
    let part_uploaded: Arc<dyn Fn() -> bool + Send + Sync> = {
        let s3 = s3.clone();
        let key = key.clone();
        Arc::new(move || requests_to(&s3, "PUT", &key) > 0)
    };
    // Request 1 declares its length and is cut once part 1 is being uploaded.
    // Request 2 is chunked and cut before a part is full. Later requests get
    // everything.
    let origin = ScriptedOrigin::start(move |request| {
        let (chunked, delivery) = match request {
            1 => (
                false,
                Delivery::CloseWhen {
                    after: 5 * MIB + MIB / 2,
                    ready: part_uploaded.clone(),
                },
            ),
            2 => (true, Delivery::CloseAfter(MIB)),
            _ => (false, Delivery::All),
        };
        Plan {
            body: script_body.clone(),
            chunked,
            delivery,
        }
    })
    .await;
    store_callback(&s3, "mj_cut", &[origin.url("/video.mp4")]).await;
    let archiver = archiver(&s3, transfer(2));
    let task_id = TaskId::parse("mj_cut").unwrap();

    let err = archiver
        .archive_stored(&task_id, Instant::now() + Duration::from_secs(60), false)
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            ArchiveError::Incomplete {
                pending: 1,
                total: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(origin.hits(), 2);
    let manifest = stored_manifest(&s3, "mj_cut").await;
    assert_eq!(manifest.status, ArchiveStatus::Incomplete);
    assert_eq!(
        manifest.results[0].error.as_ref().map(|e| e.kind),
        Some(FailureKind::Transient)
    );
    assert_eq!(s3.head(&key).await, None, "no object with partial bytes");
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_cut/")).await,
        [
            format!("{PREFIX}mj_cut/callback.json"),
            format!("{PREFIX}mj_cut/manifest.json")
        ]
    );
    assert_eq!(
        s3.list_multipart_uploads().await,
        Vec::<(String, String)>::new()
    );
    assert_eq!(requests_to(&s3, "POST", &key), 2, "two uploads created");
    assert!(
        requests_to(&s3, "PUT", &key) >= 1,
        "a part was uploaded before the cut"
    );
    assert_eq!(requests_to(&s3, "DELETE", &key), 2, "both uploads aborted");

    let manifest = archiver
        .archive_stored(&task_id, Instant::now() + Duration::from_secs(60), false)
        .await
        .unwrap();

    assert_eq!(manifest.status, ArchiveStatus::Complete);
    assert_eq!(origin.hits(), 3);
    let stored = s3.get_bytes(&key).await.unwrap();
    assert_eq!(stored.len(), body.len());
    assert_eq!(sha256_hex(&stored), sha256_hex(&body));
    assert_eq!(
        manifest.results[0].sha256.as_deref(),
        Some(sha256_hex(&body).as_str())
    );
    assert_eq!(
        s3.list_multipart_uploads().await,
        Vec::<(String, String)>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_stops_at_deadline_and_aborts_upload() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    // About 10 s for the PNG (201 chunks 50 ms apart) and 6.4 s for the
    // chunked body (64 chunks 100 ms apart): both outlast the 2 s deadline.
    let dripping = ScriptedOrigin::start(|_| Plan {
        body: Bytes::from(generated_bytes(MIB as u64, 9)),
        chunked: true,
        delivery: Delivery::Drip {
            chunk: 16 * 1024,
            interval: Duration::from_millis(100),
        },
    })
    .await;
    let urls = vec![
        origin.url("/drip/docs-screenshot.png?chunk=1024&interval_ms=50"),
        dripping.url("/video.mp4"),
    ];
    let callback = Callback {
        code: 200,
        msg: Some("success".into()),
        task_id: TaskId::parse("mj_drip").unwrap(),
        prompt_json: None,
        result_urls: urls,
    };
    let options = RunOptions {
        source: TaskSource::Callback,
        force: false,
    };
    let deadline_in = Duration::from_secs(2);

    let started = Instant::now();
    let err = archiver(&s3, transfer(3))
        .archive_callback(&callback, started + deadline_in, options)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert!(
        matches!(
            err,
            ArchiveError::Incomplete {
                pending: 2,
                total: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        elapsed < deadline_in + Duration::from_secs(1),
        "{elapsed:?}"
    );
    let manifest = stored_manifest(&s3, "mj_drip").await;
    assert_eq!(manifest.status, ArchiveStatus::Incomplete);
    for entry in &manifest.results {
        assert_eq!(
            entry.error.as_ref().map(|e| e.kind),
            Some(FailureKind::Deadline),
            "{entry:?}"
        );
        assert_eq!(entry.key, None);
    }
    assert_eq!(
        origin.hits("/drip/docs-screenshot.png?chunk=1024&interval_ms=50"),
        1,
        "a deadline is not retried"
    );
    assert_eq!(dripping.hits(), 1);

    let multipart_key = format!("{PREFIX}mj_drip/1.mp4");
    assert_eq!(
        requests_to(&s3, "POST", &multipart_key),
        1,
        "upload created"
    );
    assert_eq!(
        requests_to(&s3, "DELETE", &multipart_key),
        1,
        "upload aborted"
    );
    assert_eq!(
        s3.list_multipart_uploads().await,
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_drip/")).await,
        [format!("{PREFIX}mj_drip/manifest.json")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_archiver_leaves_no_object_and_rerun_completes() {
    let s3 = S3Server::start().await;
    let len = 12 * MIB as u64 + 777;
    let body = Bytes::from(generated_bytes(len, 11));
    let script_body = body.clone();
    // The first response stalls after one part's worth plus a little, so the
    // archiver has uploaded part 1 and waits for more when it is killed.
    let origin = ScriptedOrigin::start(move |request| Plan {
        body: script_body.clone(),
        chunked: false,
        delivery: if request == 1 {
            Delivery::StallAfter(5 * MIB + 100 * 1024)
        } else {
            Delivery::All
        },
    })
    .await;
    store_callback(&s3, "mj_killed", &[origin.url("/video.mp4")]).await;
    let key = format!("{PREFIX}mj_killed/0.mp4");
    let part_path = format!("/{}/{key}", s3.bucket());

    let api = Arc::new(RuntimeApi::start().await);
    let mut env = function_env("mj-archive-archiver", &api, s3.env());
    env.push(("ALLOW_PRIVATE_SOURCES".into(), "true".into()));
    env.push(("PART_SIZE_BYTES".into(), (5 * MIB).to_string()));
    env.push(("MAX_BUFFERED_PARTS".into(), "2".into()));
    let mut first = ChildGuard::spawn(ARCHIVER_BIN, &[] as &[&str], &env);
    assert!(
        api.wait_for_pollers(1, Duration::from_secs(30)).await,
        "{}",
        first.output()
    );

    let event = s3_event(&s3, &format!("{PREFIX}mj_killed/callback.json"));
    let first_invocation = {
        let api = api.clone();
        let event = event.clone();
        tokio::spawn(async move { api.invoke(event, Duration::from_secs(120)).await })
    };
    let started = Instant::now();
    while !s3
        .request_log()
        .contains(&("PUT".to_owned(), part_path.clone()))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no part upload seen\n{}",
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let part 1 finish; the source sends nothing more, so nothing completes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill();
    first_invocation.abort();

    assert_eq!(s3.head(&key).await, None, "no object with partial bytes");
    let dead_uploads = s3.list_multipart_uploads().await;
    assert_eq!(dead_uploads.len(), 1, "{dead_uploads:?}");
    assert_eq!(dead_uploads[0].0, key);
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_killed/")).await,
        [format!("{PREFIX}mj_killed/callback.json")]
    );

    let second = ChildGuard::spawn(ARCHIVER_BIN, &[] as &[&str], &env);
    assert!(
        api.wait_for_pollers(1, Duration::from_secs(30)).await,
        "{}",
        second.output()
    );
    let outcome = api.invoke(event, Duration::from_secs(60)).await;

    let summary = outcome.json();
    assert_eq!(
        summary["archived"][0]["status"],
        "complete",
        "{}",
        second.output()
    );
    assert_eq!(origin.hits(), 2);
    let stored = s3.get_bytes(&key).await.unwrap();
    assert_eq!(stored.len() as u64, len);
    assert_eq!(sha256_hex(&stored), generated_sha256(len, 11));
    assert_eq!(
        stored_manifest(&s3, "mj_killed").await.results[0]
            .sha256
            .as_deref(),
        Some(generated_sha256(len, 11).as_str())
    );
    // Nothing aborts the killed process's upload: it stays listed until the
    // bucket's lifecycle rule for incomplete multipart uploads removes it.
    assert_eq!(s3.list_multipart_uploads().await, dead_uploads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_across_receivers_store_once() {
    let s3 = S3Server::start().await;
    let api = RuntimeApi::start().await;
    let mut s3_env = s3.env();
    s3_env.push(("WEBHOOK_HMAC_KEY".into(), HMAC_KEY.into()));
    let env = function_env("mj-archive-receiver", &api, s3_env);
    let receivers: Vec<ChildGuard> = (0..3)
        .map(|_| ChildGuard::spawn(RECEIVER_BIN, &[] as &[&str], &env))
        .collect();
    assert!(
        api.wait_for_pollers(3, Duration::from_secs(30)).await,
        "{}",
        receivers.iter().map(ChildGuard::output).collect::<String>()
    );
    let body = callback_body("mj_dup", &["https://cdn.example.com/x_0_0.png".to_owned()]);
    let event = signed_http_event(&body, "mj_dup");
    let key = format!("{PREFIX}mj_dup/callback.json");

    let outcomes = futures::future::join_all(
        (0..10).map(|_| api.invoke(event.clone(), Duration::from_secs(15))),
    )
    .await;

    let mut statuses = Vec::new();
    for outcome in &outcomes {
        let (status, answer) = http_answer(outcome);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["key"], key.as_str());
        statuses.push(answer["status"].as_str().unwrap().to_owned());
    }
    statuses.sort();
    let mut expected = vec!["duplicate".to_owned(); 9];
    expected.push("stored".to_owned());
    assert_eq!(statuses, expected);
    assert_eq!(
        requests_to(&s3, "PUT", &key),
        10,
        "one conditional PUT per delivery"
    );
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_dup/")).await,
        std::slice::from_ref(&key)
    );
    assert_eq!(s3.get_bytes(&key).await, Some(body));
    assert_eq!(api.delivered(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archivers_on_one_task_agree() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let video_len = 6 * MIB as u64 + 99;
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/chunked/docs-screenshot.jpeg"),
        origin.url(&format!(
            "/generated/{video_len}?type=video/mp4&seed=5&chunked=1"
        )),
        origin.url("/drip/docs-screenshot.webp?chunk=4096&interval_ms=10"),
    ];
    store_callback(&s3, "mj_twice", &urls).await;
    let task_id = TaskId::parse("mj_twice").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = archiver(&s3, transfer(3));
    let second = archiver(&s3, transfer(3));

    let (a, b) = tokio::join!(
        first.archive_stored(&task_id, deadline, false),
        second.archive_stored(&task_id, deadline, false),
    );

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status, ArchiveStatus::Complete);
    assert_eq!(b.status, ArchiveStatus::Complete);
    assert_eq!(a.results, b.results);
    let names = [
        "0.png",
        "1.jpeg",
        "2.mp4",
        "3.webp",
        "callback.json",
        "manifest.json",
    ];
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_twice/")).await,
        names.map(|name| format!("{PREFIX}mj_twice/{name}"))
    );
    let expected = [
        ("0.png", sha256_hex(&data("docs-screenshot.png"))),
        ("1.jpeg", sha256_hex(&data("docs-screenshot.jpeg"))),
        ("2.mp4", generated_sha256(video_len, 5)),
        ("3.webp", sha256_hex(&data("docs-screenshot.webp"))),
    ];
    for (index, (name, sha256)) in expected.iter().enumerate() {
        let stored = s3
            .get_bytes(&format!("{PREFIX}mj_twice/{name}"))
            .await
            .unwrap();
        assert_eq!(&sha256_hex(&stored), sha256, "{name}");
        assert_eq!(a.results[index].sha256.as_ref(), Some(sha256), "{name}");
    }
    let manifest = stored_manifest(&s3, "mj_twice").await;
    assert_eq!(manifest.status, ArchiveStatus::Complete);
    assert_eq!(manifest.results, a.results);
    assert_eq!(
        s3.list_multipart_uploads().await,
        Vec::<(String, String)>::new()
    );
}
