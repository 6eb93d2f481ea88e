//! The archiver's library path against a real S3-compatible server and a
//! real HTTP origin, both on 127.0.0.1.

mod support;

use std::time::Duration;

use mj_archive::archive::{ArchiveError, Archiver, RunOptions, TaskSource};
use mj_archive::archiver_event::{handle_event, EventError};
use mj_archive::callback::{Callback, CallbackLimits};
use mj_archive::config::{RetryConfig, TransferConfig};
use mj_archive::keys::KeyLayout;
use mj_archive::manifest::{ArchiveStatus, FailureKind, Manifest};
use mj_archive::metrics::Metrics;
use mj_archive::source_guard::SourcePolicy;
use mj_archive::store::Store;
use mj_archive::task_id::TaskId;
use serde_json::json;
use support::origin::{generated_sha256, Origin};
use support::s3::S3Server;
use support::{data, sha256_hex};
use tokio::time::Instant;

const PREFIX: &str = "midjourney/";
const MIB: usize = 1024 * 1024;

fn fast_transfer() -> TransferConfig {
    TransferConfig {
        part_size: 5 * MIB,
        retry: RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        read_timeout: Duration::from_secs(5),
        deadline_margin: Duration::from_millis(200),
        ..TransferConfig::default()
    }
}

fn local_sources() -> SourcePolicy {
    SourcePolicy {
        allow_private: true,
        ..SourcePolicy::default()
    }
}

fn archiver(s3: &S3Server, transfer: TransferConfig) -> Archiver {
    Archiver::new(
        Store::new(s3.client(), s3.bucket()),
        KeyLayout::new(PREFIX).unwrap(),
        CallbackLimits::default(),
        transfer,
        local_sources(),
        None,
        Metrics::disabled(),
    )
    .unwrap()
}

fn callback(task_id: &str, code: i64, urls: &[String]) -> Callback {
    Callback {
        code,
        msg: Some(
            if code == 200 {
                "success"
            } else {
                "generation failed"
            }
            .into(),
        ),
        task_id: TaskId::parse(task_id).unwrap(),
        prompt_json: Some(r#"{"prompt":"a beautiful landscape","model":"midjourney"}"#.into()),
        result_urls: urls.to_vec(),
    }
}

fn in_a_minute() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

const FROM_CALLBACK: RunOptions = RunOptions {
    source: TaskSource::Callback,
    force: false,
};

async fn stored_manifest(s3: &S3Server, task_id: &str) -> Manifest {
    let bytes = s3
        .get_bytes(&format!("{PREFIX}{task_id}/manifest.json"))
        .await
        .expect("manifest.json is stored");
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn archives_each_sample_byte_identical() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/files/docs-screenshot.jpeg"),
        origin.url("/files/docs-screenshot.webp"),
        origin.url("/files/docs-screenshot-small.gif"),
        origin.url("/chunked/docs-screenshot.png"),
    ];

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_task_1", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    let expected = [
        ("0.png", "image/png", "docs-screenshot.png"),
        ("1.jpeg", "image/jpeg", "docs-screenshot.jpeg"),
        ("2.webp", "image/webp", "docs-screenshot.webp"),
        ("3.gif", "image/gif", "docs-screenshot-small.gif"),
        ("4.png", "image/png", "docs-screenshot.png"),
    ];
    assert_eq!(manifest.status, ArchiveStatus::Complete);
    for (index, (name, content_type, sample)) in expected.iter().enumerate() {
        let key = format!("{PREFIX}mj_task_1/{name}");
        let stored = s3
            .get_bytes(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(sha256_hex(&stored), sha256_hex(&data(sample)), "{key}");

        let head = s3.head(&key).await.unwrap();
        assert_eq!(head.content_type.as_deref(), Some(*content_type), "{key}");
        assert_eq!(
            head.content_disposition.as_deref(),
            Some(format!("attachment; filename=\"mj_task_1-{name}\"").as_str()),
            "{key}"
        );
        assert_eq!(
            head.metadata.get("task-id").map(String::as_str),
            Some("mj_task_1")
        );
        assert_eq!(head.metadata.get("result-index"), Some(&index.to_string()));
        assert_eq!(head.metadata.get("source-url"), Some(&urls[index]));

        let entry = &manifest.results[index];
        assert_eq!(entry.key.as_deref(), Some(key.as_str()));
        assert_eq!(entry.content_type.as_deref(), Some(*content_type));
        assert_eq!(entry.bytes, Some(data(sample).len() as u64));
        assert_eq!(
            entry.sha256.as_deref(),
            Some(sha256_hex(&data(sample)).as_str())
        );
        assert_eq!(entry.error, None);
    }

    let keys = s3.list_keys(&format!("{PREFIX}mj_task_1/")).await;
    assert_eq!(
        keys,
        [
            "0.png",
            "1.jpeg",
            "2.webp",
            "3.gif",
            "4.png",
            "manifest.json"
        ]
        .map(|name| format!("{PREFIX}mj_task_1/{name}"))
    );
    assert_eq!(stored_manifest(&s3, "mj_task_1").await, manifest);
    assert_eq!(
        manifest.prompt,
        Some(json!({"prompt": "a beautiful landscape", "model": "midjourney"}))
    );
}

/// POSTs to a key are CreateMultipartUpload and CompleteMultipartUpload.
fn multipart_posts(s3: &S3Server, key: &str) -> usize {
    let path = format!("/{}/{key}", s3.bucket());
    s3.request_log()
        .iter()
        .filter(|(method, p)| method == "POST" && *p == path)
        .count()
}

#[tokio::test]
async fn known_small_put_chunked_multipart() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.jpeg"),
        origin.url("/chunked/docs-screenshot.jpeg"),
    ];

    archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_parts", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert_eq!(multipart_posts(&s3, &format!("{PREFIX}mj_parts/0.jpeg")), 0);
    assert_eq!(multipart_posts(&s3, &format!("{PREFIX}mj_parts/1.jpeg")), 2);
    assert_eq!(
        s3.get_bytes(&format!("{PREFIX}mj_parts/1.jpeg"))
            .await
            .unwrap(),
        data("docs-screenshot.jpeg")
    );
}

#[tokio::test]
async fn large_result_streams_in_parts() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let len = 12 * MIB as u64 + 12_345;
    let urls = vec![
        origin.url(&format!("/generated/{len}?type=video/mp4&seed=7")),
        origin.url(&format!("/generated/{len}?type=video/mp4&seed=8&chunked=1")),
    ];

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_large", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    for (index, seed) in [(0, 7), (1, 8)] {
        let key = format!("{PREFIX}mj_large/{index}.mp4");
        let stored = s3.get_bytes(&key).await.unwrap();
        assert_eq!(stored.len() as u64, len);
        assert_eq!(sha256_hex(&stored), generated_sha256(len, seed));
        assert_eq!(
            manifest.results[index].sha256.as_deref(),
            Some(generated_sha256(len, seed).as_str())
        );
        assert_eq!(
            s3.head(&key).await.unwrap().content_type.as_deref(),
            Some("video/mp4")
        );
        assert_eq!(multipart_posts(&s3, &key), 2);
    }
    assert!(s3.list_multipart_uploads().await.is_empty());
}

#[tokio::test]
async fn redelivery_downloads_nothing() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/files/docs-screenshot.webp"),
    ];
    let archiver = archiver(&s3, fast_transfer());
    let task = callback("mj_twice", 200, &urls);

    let first = archiver
        .archive_callback(&task, in_a_minute(), FROM_CALLBACK)
        .await
        .unwrap();
    let hits = origin.total_hits();
    s3.clear_request_log();
    let second = archiver
        .archive_callback(&task, in_a_minute(), FROM_CALLBACK)
        .await
        .unwrap();

    assert_eq!(hits, 2);
    assert_eq!(origin.total_hits(), 2);
    assert_eq!(second, first);
    assert_eq!(s3.write_requests(), Vec::<(String, String)>::new());

    let forced = RunOptions {
        force: true,
        ..FROM_CALLBACK
    };
    let replayed = archiver
        .archive_callback(&task, in_a_minute(), forced)
        .await
        .unwrap();
    assert_eq!(
        origin.total_hits(),
        2,
        "a forced run reuses archived results"
    );
    assert_eq!(replayed.results, first.results);
}

#[tokio::test]
async fn permanent_failures_recorded_not_fatal() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let cases = [
        (origin.url("/status/404"), FailureKind::HttpStatus),
        (origin.url("/html-as-image"), FailureKind::NotMedia),
        (
            origin.url("/typed/docs-screenshot.png?type=text/plain"),
            FailureKind::NotMedia,
        ),
        (origin.url("/empty"), FailureKind::Empty),
        ("not a url".to_owned(), FailureKind::InvalidUrl),
        ("ftp://127.0.0.1/x.png".to_owned(), FailureKind::Refused),
    ];
    let mut urls: Vec<String> = cases.iter().map(|(url, _)| url.clone()).collect();
    urls.push(origin.url("/files/docs-screenshot.png"));

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_bad", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    for (index, (url, kind)) in cases.iter().enumerate() {
        let entry = &manifest.results[index];
        assert_eq!(
            entry.error.as_ref().map(|e| e.kind),
            Some(*kind),
            "{url}: {entry:?}"
        );
        assert_eq!(entry.key, None, "{url}");
    }
    assert!(manifest.results[6].is_archived());
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_bad/")).await,
        vec![
            format!("{PREFIX}mj_bad/6.png"),
            format!("{PREFIX}mj_bad/manifest.json")
        ]
    );
    assert_eq!(origin.hits("/status/404"), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn failure_callback_downloads_nothing() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![origin.url("/files/docs-screenshot.png")];

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_failed", 500, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert_eq!(manifest.status, ArchiveStatus::ProviderFailed);
    assert_eq!(manifest.provider_code, 500);
    assert_eq!(manifest.provider_msg.as_deref(), Some("generation failed"));
    assert!(manifest.results.is_empty());
    assert_eq!(origin.total_hits(), 0);
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_failed/")).await,
        vec![format!("{PREFIX}mj_failed/manifest.json")]
    );
}

#[tokio::test]
async fn octet_stream_and_missing_type_are_sniffed() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/typed/docs-screenshot.webp?type=application/octet-stream"),
        origin.url("/typed/docs-screenshot-small.gif?type=none"),
        origin.url("/typed/docs-screenshot.png?type=image/x-vendor"),
    ];

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_sniff", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    let keys: Vec<_> = manifest
        .results
        .iter()
        .map(|r| r.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["0.webp", "1.gif", "2.png"].map(|name| format!("{PREFIX}mj_sniff/{name}"))
    );
    let types: Vec<_> = manifest
        .results
        .iter()
        .map(|r| r.content_type.clone().unwrap())
        .collect();
    assert_eq!(types, ["image/webp", "image/gif", "image/x-vendor"]);
}

#[tokio::test]
async fn transient_failure_retried_then_archived() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let url = origin.url("/flaky/docs-screenshot.png?fail=2&status=503");

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_flaky", 200, &[url]),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert_eq!(
        origin.hits("/flaky/docs-screenshot.png?fail=2&status=503"),
        3
    );
    assert_eq!(manifest.status, ArchiveStatus::Complete);
    assert_eq!(
        s3.get_bytes(&format!("{PREFIX}mj_flaky/0.png"))
            .await
            .unwrap(),
        data("docs-screenshot.png")
    );
}

#[tokio::test]
async fn persistent_transient_failure_fails_then_resumes() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/files/docs-screenshot.jpeg"),
        origin.url("/flaky/docs-screenshot.png?fail=3&status=503"),
    ];
    let archiver = archiver(&s3, fast_transfer());
    let task = callback("mj_resume", 200, &urls);

    let err = archiver
        .archive_callback(&task, in_a_minute(), FROM_CALLBACK)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ArchiveError::Incomplete {
                pending: 1,
                total: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let manifest = stored_manifest(&s3, "mj_resume").await;
    assert_eq!(manifest.status, ArchiveStatus::Incomplete);
    assert_eq!(
        manifest.results[1].error.as_ref().map(|e| e.kind),
        Some(FailureKind::Transient)
    );

    let resumed = archiver
        .archive_callback(&task, in_a_minute(), FROM_CALLBACK)
        .await
        .unwrap();
    assert_eq!(resumed.status, ArchiveStatus::Complete);
    assert_eq!(
        origin.hits("/files/docs-screenshot.jpeg"),
        1,
        "archived result not fetched again"
    );
    assert_eq!(
        origin.hits("/flaky/docs-screenshot.png?fail=3&status=503"),
        4
    );
}

#[tokio::test]
async fn truncated_body_leaves_no_object() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let urls = vec![
        origin.url("/truncate/docs-screenshot.png?after=1000"),
        origin.url("/truncate/docs-screenshot.png?after=1000&chunked=1"),
    ];

    let err = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_cut", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, ArchiveError::Incomplete { pending: 2, .. }),
        "{err:?}"
    );
    assert_eq!(origin.hits("/truncate/docs-screenshot.png?after=1000"), 3);
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_cut/")).await,
        vec![format!("{PREFIX}mj_cut/manifest.json")]
    );
    assert!(
        s3.list_multipart_uploads().await.is_empty(),
        "failed uploads are aborted"
    );
}

#[tokio::test]
async fn size_limit_applies_to_declared_and_counted_length() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let transfer = TransferConfig {
        max_result_bytes: 100_000,
        ..fast_transfer()
    };
    let urls = vec![
        origin.url("/files/docs-screenshot.png"),
        origin.url("/chunked/docs-screenshot.png"),
        origin.url("/files/docs-screenshot.webp"),
    ];

    let manifest = archiver(&s3, transfer)
        .archive_callback(
            &callback("mj_big", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert_eq!(
        manifest.results[0].error.as_ref().map(|e| e.kind),
        Some(FailureKind::TooLarge)
    );
    assert_eq!(
        manifest.results[1].error.as_ref().map(|e| e.kind),
        Some(FailureKind::TooLarge)
    );
    assert!(manifest.results[2].is_archived());
    assert!(s3.list_multipart_uploads().await.is_empty());
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_big/")).await,
        vec![
            format!("{PREFIX}mj_big/2.webp"),
            format!("{PREFIX}mj_big/manifest.json")
        ]
    );
}

#[tokio::test]
async fn redirect_followed_within_policy() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let target = origin.url("/files/docs-screenshot.webp");
    let urls = vec![
        origin.url(&format!("/redirect?to={target}")),
        origin.url(&format!("/redirect-chain?hops=7&to={target}")),
    ];

    let manifest = archiver(&s3, fast_transfer())
        .archive_callback(
            &callback("mj_redirect", 200, &urls),
            in_a_minute(),
            FROM_CALLBACK,
        )
        .await
        .unwrap();

    assert!(manifest.results[0].is_archived());
    assert_eq!(
        manifest.results[0].key.as_deref(),
        Some("midjourney/mj_redirect/0.webp")
    );
    assert_eq!(
        manifest.results[1].error.as_ref().map(|e| e.kind),
        Some(FailureKind::Refused)
    );
}

fn s3_event(bucket: &str, key: &str) -> serde_json::Value {
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("events/s3-callback-created.json").unwrap())
            .unwrap();
    event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
    event["Records"][0]["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    event["Records"][0]["s3"]["object"]["key"] = json!(key);
    event
}

#[tokio::test]
async fn s3_event_archives_stored_callback() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let body = json!({"code": 200, "msg": "success", "data": {
        "taskId": "mj_event_1", "resultUrls": [origin.url("/files/docs-screenshot.png")]}});
    s3.put_bytes(
        "midjourney/mj_event_1/callback.json",
        body.to_string().as_bytes(),
        "application/json",
    )
    .await;

    let summary = handle_event(
        &archiver(&s3, fast_transfer()),
        s3_event(s3.bucket(), "midjourney/mj_event_1/callback.json"),
        in_a_minute(),
    )
    .await
    .unwrap();

    assert_eq!(summary.archived.len(), 1);
    assert_eq!(summary.archived[0].task_id, "mj_event_1");
    assert_eq!(summary.archived[0].status, ArchiveStatus::Complete);
    assert_eq!(
        s3.get_bytes("midjourney/mj_event_1/0.png").await.unwrap(),
        data("docs-screenshot.png")
    );
}

#[tokio::test]
async fn s3_event_keys_are_url_decoded() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let archiver = Archiver::new(
        Store::new(s3.client(), s3.bucket()),
        KeyLayout::new("mid journey+x/").unwrap(),
        CallbackLimits::default(),
        fast_transfer(),
        local_sources(),
        None,
        Metrics::disabled(),
    )
    .unwrap();
    let body = json!({"code": 200, "data": {"taskId": "mj_enc", "resultUrls": [origin.url("/files/docs-screenshot.webp")]}});
    s3.put_bytes(
        "mid journey+x/mj_enc/callback.json",
        body.to_string().as_bytes(),
        "application/json",
    )
    .await;

    let summary = handle_event(
        &archiver,
        s3_event(s3.bucket(), "mid+journey%2Bx/mj_enc/callback.json"),
        in_a_minute(),
    )
    .await
    .unwrap();

    assert_eq!(summary.archived[0].task_id, "mj_enc");
    assert_eq!(
        s3.get_bytes("mid journey+x/mj_enc/0.webp").await.unwrap(),
        data("docs-screenshot.webp")
    );
}

#[tokio::test]
async fn s3_event_ignores_other_keys_and_buckets() {
    let s3 = S3Server::start().await;
    let archiver = archiver(&s3, fast_transfer());

    for (bucket, key) in [
        (s3.bucket(), "midjourney/mj_task_1/0.jpeg"),
        (s3.bucket(), "midjourney/mj_task_1/manifest.json"),
        (s3.bucket(), "other/mj_task_1/callback.json"),
        ("another-bucket", "midjourney/mj_task_1/callback.json"),
    ] {
        let summary = handle_event(&archiver, s3_event(bucket, key), in_a_minute())
            .await
            .unwrap();
        assert_eq!(summary.ignored, vec![key.to_owned()]);
        assert!(summary.archived.is_empty());
    }
    let test_event =
        json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": s3.bucket()});
    let summary = handle_event(&archiver, test_event, in_a_minute())
        .await
        .unwrap();
    assert!(summary.archived.is_empty());
    assert!(summary.ignored.is_empty());
    assert_eq!(
        s3.write_requests().len(),
        1,
        "only the bucket creation wrote"
    );
}

#[tokio::test]
async fn s3_event_errors_are_specific() {
    let s3 = S3Server::start().await;
    let archiver = archiver(&s3, fast_transfer());

    let err = handle_event(&archiver, json!({"hello": "world"}), in_a_minute())
        .await
        .unwrap_err();
    assert!(matches!(err, EventError::NotS3Event(_)), "{err:?}");

    let err = handle_event(
        &archiver,
        s3_event(s3.bucket(), "midjourney/mj_none/callback.json"),
        in_a_minute(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            EventError::Tasks {
                source: ArchiveError::CallbackMissing { .. },
                ..
            }
        ),
        "{err:?}"
    );

    s3.put_bytes(
        "midjourney/mj_other/callback.json",
        br#"{"code":200,"data":{"taskId":"mj_x"}}"#,
        "application/json",
    )
    .await;
    let err = handle_event(
        &archiver,
        s3_event(s3.bucket(), "midjourney/mj_other/callback.json"),
        in_a_minute(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            EventError::Tasks {
                source: ArchiveError::TaskIdMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
}
