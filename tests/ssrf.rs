//! The SSRF guard end to end: the resolver hook, the redirect hop check,
//! user info, the redirect limit and plain http, against a real origin on
//! 127.0.0.1 reached as `localhost`. Every refusal is checked to have sent
//! no request to its target.

mod support;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use mj_archive::archive::{Archiver, RunOptions, TaskSource};
use mj_archive::callback::{Callback, CallbackLimits};
use mj_archive::config::{RetryConfig, TransferConfig};
use mj_archive::fetch::{FetchError, Fetcher};
use mj_archive::keys::KeyLayout;
use mj_archive::manifest::{ArchiveStatus, FailureKind, Manifest};
use mj_archive::metrics::Metrics;
use mj_archive::source_guard::{GuardedResolver, SourceError, SourcePolicy};
use mj_archive::store::Store;
use mj_archive::task_id::TaskId;
use reqwest::dns::{Name, Resolve};
use support::origin::Origin;
use support::s3::S3Server;
use support::{data, sha256_hex};
use tokio::time::Instant;
use url::Url;

const PREFIX: &str = "midjourney/";

fn transfer(max_redirects: usize) -> TransferConfig {
    TransferConfig {
        max_redirects,
        retry: RetryConfig {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        },
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        deadline_margin: Duration::from_millis(200),
        ..TransferConfig::default()
    }
}

/// Builds the policy that `ALLOWED_SOURCE_HOSTS=localhost` with `ALLOW_PRIVATE_SOURCES=true` sets.
fn localhost_only() -> SourcePolicy {
    SourcePolicy {
        allow_private: true,
        allowed_hosts: vec!["localhost".into()],
        ..SourcePolicy::default()
    }
}

/// Builds a policy that allows plain http, but only to public addresses.
fn http_public_only() -> SourcePolicy {
    SourcePolicy {
        allow_http: true,
        ..SourcePolicy::default()
    }
}

fn private_allowed() -> SourcePolicy {
    SourcePolicy {
        allow_private: true,
        ..SourcePolicy::default()
    }
}

fn fetcher(policy: SourcePolicy) -> Fetcher {
    Fetcher::new(policy, &transfer(5)).unwrap()
}

async fn archive(s3: &S3Server, policy: SourcePolicy, task_id: &str, urls: &[String]) -> Manifest {
    let archiver = Archiver::new(
        Store::new(s3.client(), s3.bucket()),
        KeyLayout::new(PREFIX).unwrap(),
        CallbackLimits::default(),
        transfer(5),
        policy,
        None,
        Metrics::disabled(),
    )
    .unwrap();
    let callback = Callback {
        code: 200,
        msg: Some("success".into()),
        task_id: TaskId::parse(task_id).unwrap(),
        prompt_json: None,
        result_urls: urls.to_vec(),
    };
    let options = RunOptions {
        source: TaskSource::Callback,
        force: false,
    };
    archiver
        .archive_callback(&callback, Instant::now() + Duration::from_secs(60), options)
        .await
        .unwrap()
}

/// Returns `http://localhost:PORT{path}` on the origin.
fn on_localhost(origin: &Origin, path: &str) -> String {
    let port = origin.authority().rsplit_once(':').unwrap().1.to_owned();
    format!("http://localhost:{port}{path}")
}

/// Returns the first address of `localhost` here, which the resolver checks first.
async fn first_localhost_address() -> IpAddr {
    tokio::net::lookup_host(("localhost", 0))
        .await
        .expect("localhost resolves")
        .next()
        .expect("localhost has an address")
        .ip()
}

/// Returns the refusal of a fetch, panicking on any other outcome.
async fn refusal(fetcher: &Fetcher, url: &str) -> SourceError {
    match fetcher.get(&Url::parse(url).unwrap()).await {
        Err(FetchError::Refused(refused)) => refused,
        Err(other) => panic!("{url}: expected a refusal, got {other:?}"),
        Ok(response) => panic!("{url}: expected a refusal, got HTTP {}", response.status()),
    }
}

#[tokio::test]
async fn localhost_refused_by_resolver_without_request() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let url = on_localhost(&origin, "/files/docs-screenshot.png");
    let expected = SourceError::NonPublicAddress {
        host: "localhost".into(),
        address: first_localhost_address().await,
    };

    // The URL check passes a host name, so only the resolver checks the address.
    assert!(http_public_only().check_url(&url).is_ok());
    assert_eq!(refusal(&fetcher(http_public_only()), &url).await, expected);

    let https = url.replace("http://", "https://");
    assert_eq!(
        refusal(&fetcher(SourcePolicy::default()), &https).await,
        expected
    );

    let manifest = archive(&s3, http_public_only(), "mj_localhost", &[url]).await;
    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    let error = manifest.results[0].error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Refused);
    assert_eq!(error.message, expected.to_string());
    assert_eq!(origin.total_hits(), 0, "{:?}", origin.request_log());
    assert_eq!(
        s3.list_keys(&format!("{PREFIX}mj_localhost/")).await,
        [format!("{PREFIX}mj_localhost/manifest.json")]
    );
}

#[tokio::test]
async fn redirect_hop_to_other_host_refused() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let same_host = on_localhost(&origin, "/files/docs-screenshot.webp");
    let other_host = origin.url("/files/docs-screenshot.png");
    let urls = vec![
        on_localhost(&origin, &format!("/redirect?to={same_host}")),
        on_localhost(&origin, &format!("/redirect?to={other_host}")),
        on_localhost(&origin, &format!("/redirect?status=307&to={other_host}")),
        origin.url("/files/docs-screenshot.jpeg"),
        on_localhost(&origin, "/files/docs-screenshot-small.gif")
            .replace("localhost", "notlocalhost"),
        on_localhost(&origin, "/files/docs-screenshot-small.gif")
            .replace("localhost", "localhost.attacker.example"),
    ];

    let manifest = archive(&s3, localhost_only(), "mj_hops", &urls).await;

    assert_eq!(manifest.status, ArchiveStatus::CompleteWithErrors);
    let archived = &manifest.results[0];
    assert_eq!(archived.key.as_deref(), Some("midjourney/mj_hops/0.webp"));
    assert_eq!(
        archived.sha256.as_deref(),
        Some(sha256_hex(&data("docs-screenshot.webp")).as_str())
    );
    assert_eq!(origin.hits("/files/docs-screenshot.webp"), 1);

    let refused = |host: &str| SourceError::HostNotAllowed { host: host.into() }.to_string();
    let expected = [
        (1, refused("127.0.0.1")),
        (2, refused("127.0.0.1")),
        (3, refused("127.0.0.1")),
        (4, refused("notlocalhost")),
        (5, refused("localhost.attacker.example")),
    ];
    for (index, message) in expected {
        let error = manifest.results[index].error.as_ref().unwrap();
        assert_eq!(error.kind, FailureKind::Refused, "{}", urls[index]);
        assert_eq!(error.message, message, "{}", urls[index]);
        assert_eq!(manifest.results[index].key, None);
    }
    assert_eq!(
        origin.hits("/files/docs-screenshot.png"),
        0,
        "the refused hop got no request"
    );
    assert_eq!(origin.hits("/files/docs-screenshot.jpeg"), 0);
    assert_eq!(origin.hits("/files/docs-screenshot-small.gif"), 0);

    // Through the fetcher alone, the hop's refusal keeps its exact variant.
    let hop = refusal(&fetcher(localhost_only()), &urls[1]).await;
    assert_eq!(
        hop,
        SourceError::HostNotAllowed {
            host: "127.0.0.1".into()
        }
    );
    assert_eq!(origin.hits("/files/docs-screenshot.png"), 0);
}

#[tokio::test]
async fn userinfo_refused_at_start_and_on_redirect() {
    let origin = Origin::start().await;
    let fetcher = fetcher(private_allowed());
    let authority = origin.authority();
    let gif = "/files/docs-screenshot-small.gif";

    for url in [
        format!("http://user:secret@{authority}{gif}"),
        format!("http://user@{authority}{gif}"),
        format!("http://:secret@{authority}{gif}"),
        format!("http://localhost@{authority}{gif}"),
    ] {
        assert_eq!(
            refusal(&fetcher, &url).await,
            SourceError::Userinfo,
            "{url}"
        );
    }
    assert_eq!(origin.total_hits(), 0);

    let redirect = origin.url(&format!("/redirect?to=http://user:secret@{authority}{gif}"));
    assert_eq!(refusal(&fetcher, &redirect).await, SourceError::Userinfo);
    assert_eq!(origin.hits(gif), 0);
    assert_eq!(origin.total_hits(), 1, "only the redirect was requested");
}

#[tokio::test]
async fn redirects_beyond_limit_refused() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let webp = origin.url("/files/docs-screenshot.webp");
    let gif = origin.url("/files/docs-screenshot-small.gif");
    let urls = vec![
        origin.url(&format!("/redirect-chain?hops=5&to={webp}")),
        origin.url(&format!("/redirect-chain?hops=6&to={gif}")),
    ];

    let manifest = archive(&s3, private_allowed(), "mj_chain", &urls).await;

    assert!(
        manifest.results[0].is_archived(),
        "{:?}",
        manifest.results[0]
    );
    assert_eq!(origin.hits("/files/docs-screenshot.webp"), 1);
    let error = manifest.results[1].error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Refused);
    assert!(
        error.message.contains("more than 5 redirects"),
        "{}",
        error.message
    );
    assert_eq!(origin.hits("/files/docs-screenshot-small.gif"), 0);
    let chain_hits = origin
        .request_log()
        .iter()
        .filter(|target| target.starts_with("/redirect-chain") && target.contains("small.gif"))
        .count();
    assert_eq!(
        chain_hits, 6,
        "six answers, the sixth redirect not followed"
    );

    // MAX_REDIRECTS=0 follows none, and the error is the redirect variant.
    let none = Fetcher::new(private_allowed(), &transfer(0)).unwrap();
    let url = Url::parse(&origin.url(&format!("/redirect?to={webp}"))).unwrap();
    let err = none.get(&url).await.unwrap_err();
    assert!(matches!(err, FetchError::Redirect(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(origin.hits("/files/docs-screenshot.webp"), 1);
}

#[tokio::test]
async fn plain_http_refused_unless_allowed() {
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let url = on_localhost(&origin, "/files/docs-screenshot.png");
    let http_refused = SourceError::SchemeNotAllowed {
        scheme: "http".into(),
        http_hint: " (or set ALLOW_HTTP_SOURCES=true)",
    };
    let localhost_https_only = SourcePolicy {
        allowed_hosts: vec!["localhost".into()],
        ..SourcePolicy::default()
    };

    assert_eq!(
        SourcePolicy::default().check_url(&url),
        Err(http_refused.clone())
    );
    assert_eq!(
        localhost_https_only.check_url(&url),
        Err(http_refused.clone())
    );
    assert!(http_public_only().check_url(&url).is_ok());
    assert!(localhost_only().check_url(&url).is_ok());
    assert_eq!(
        refusal(&fetcher(SourcePolicy::default()), &url).await,
        http_refused
    );

    let manifest = archive(&s3, localhost_https_only, "mj_http", &[url]).await;
    let error = manifest.results[0].error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Refused);
    assert_eq!(error.message, http_refused.to_string());
    assert_eq!(origin.total_hits(), 0);

    // A redirect hop to another scheme is never followed. A Location with
    // an authority reaches the policy; `file:///...` has none, so the client
    // (tower-http's FollowRedirect in reqwest 0.13) returns the 302 unfollowed.
    let fetcher = fetcher(private_allowed());
    for (target, scheme) in [
        ("ftp://127.0.0.1/x.png", "ftp"),
        ("gopher://127.0.0.1/", "gopher"),
    ] {
        let redirect = origin.url(&format!("/redirect?to={target}"));
        let err = fetcher
            .get(&Url::parse(&redirect).unwrap())
            .await
            .unwrap_err();
        match err {
            FetchError::Refused(SourceError::SchemeNotAllowed { scheme: got, .. }) => {
                assert_eq!(got, scheme, "{target}")
            }
            other => panic!("{target}: {other:?}"),
        }
    }
    let redirect = origin.url("/redirect?to=file:///etc/passwd");
    let err = fetcher
        .get(&Url::parse(&redirect).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 302 }), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn guarded_resolver_rejects_loopback_names() {
    let first = first_localhost_address().await;
    let strict = GuardedResolver::new(Arc::new(SourcePolicy::default()));

    let err = match strict.resolve(Name::from_str("localhost").unwrap()).await {
        Err(err) => err,
        Ok(addresses) => panic!("resolved to {:?}", addresses.collect::<Vec<_>>()),
    };
    let mut chain: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    let mut found = None;
    while let Some(current) = chain {
        if let Some(source_error) = current.downcast_ref::<SourceError>() {
            found = Some(source_error.clone());
            break;
        }
        chain = current.source();
    }
    assert_eq!(
        found,
        Some(SourceError::NonPublicAddress {
            host: "localhost".into(),
            address: first
        }),
        "{err}"
    );

    // A numeric name goes through the same check.
    let err = strict
        .resolve(Name::from_str("127.0.0.1").unwrap())
        .await
        .err()
        .expect("127.0.0.1 is refused");
    assert_eq!(
        err.downcast_ref::<SourceError>(),
        Some(&SourceError::NonPublicAddress {
            host: "127.0.0.1".into(),
            address: "127.0.0.1".parse().unwrap()
        })
    );

    // With private sources allowed, it hands out what the system resolves.
    let permissive = GuardedResolver::new(Arc::new(private_allowed()));
    let resolved: Vec<_> = permissive
        .resolve(Name::from_str("localhost").unwrap())
        .await
        .unwrap()
        .map(|address| address.ip())
        .collect();
    let system: Vec<_> = tokio::net::lookup_host(("localhost", 0))
        .await
        .unwrap()
        .map(|address| address.ip())
        .collect();
    assert_eq!(resolved, system);
    assert!(resolved.iter().all(IpAddr::is_loopback), "{resolved:?}");
}
