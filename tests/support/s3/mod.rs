//! An S3-compatible server in the test process: s3s 0.14.1 with SigV4
//! authentication over s3s-fs 0.14.1 in a temporary directory.
//!
//! Known differences from Amazon S3 that tests may run into:
//! * ListMultipartUploads is provided by `backend::TrackedFileSystem`, because
//!   s3s-fs returns `NotImplemented`. It honors only the `prefix` parameter.
//! * s3s-fs writes the object file before it verifies the checksums and
//!   before it stores the metadata. A PutObject that fails with `BadDigest`
//!   therefore still leaves the new bytes under the key, and a concurrent
//!   GetObject can see the bytes without their Content-Type.
//! * When CompleteMultipartUpload fails after it has started (for example
//!   with `EntityTooSmall`), s3s-fs has already forgotten the upload id, so a
//!   later AbortMultipartUpload fails with `AccessDenied`. S3 keeps the upload
//!   and lets the client abort it.

mod backend;
mod fault;

pub use fault::{Fault, FaultRule};

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use hyper::body::Incoming;
use hyper::{Method, Request};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;

use super::server::{BoxError, ServerThread};

/// Access key id that the server accepts. The secret is generated per server.
pub const ACCESS_KEY_ID: &str = "MJARCHIVETESTACCESSKEY";
/// Bucket that `S3Server::start` creates.
pub const BUCKET: &str = "mj-archive-test";
/// Region in the SigV4 credential scope of every client.
pub const REGION: &str = "us-east-1";

/// Object attributes returned by HeadObject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectHead {
    pub content_type: Option<String>,
    pub content_length: Option<i64>,
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`) with the prefix removed.
    pub metadata: HashMap<String, String>,
    pub e_tag: Option<String>,
}

/// Request counter, request log and fault rule shared with the server thread.
struct Gate {
    requests: AtomicUsize,
    log: Mutex<Vec<(String, String)>>,
    rule: Mutex<FaultRule>,
    faults_injected: AtomicUsize,
    next_request_id: AtomicU64,
}

impl Gate {
    /// Records the request and returns the fault to apply to it.
    fn admit(&self, method: &Method, path: &str) -> Fault {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.log
            .lock()
            .unwrap()
            .push((method.to_string(), path.to_owned()));

        let fault = self.rule.lock().unwrap().take(method, path);
        if fault != Fault::None {
            self.faults_injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// A running S3-compatible server on `127.0.0.1` with the bucket `BUCKET`.
/// Dropping it stops the server and deletes its directory.
pub struct S3Server {
    // Declared before `root` so that the server stops before its files go.
    server: ServerThread,
    gate: Arc<Gate>,
    secret_access_key: String,
    root: TempDir,
}

impl S3Server {
    /// Starts the server and creates `BUCKET` through the S3 API.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("failed to create the S3 root directory");
        let file_system =
            s3s_fs::FileSystem::new(root.path()).expect("failed to open the s3s-fs root");
        let secret_access_key = super::random_hex(20);

        let mut builder = S3ServiceBuilder::new(backend::TrackedFileSystem::new(file_system));
        builder.set_auth(SimpleAuth::from_single(
            ACCESS_KEY_ID,
            secret_access_key.clone(),
        ));
        let service = builder.build();

        let gate = Arc::new(Gate {
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            rule: Mutex::new(FaultRule::new(Fault::None)),
            faults_injected: AtomicUsize::new(0),
            next_request_id: AtomicU64::new(1),
        });

        let handler_gate = gate.clone();
        let server = ServerThread::spawn("s3", move |request: Request<Incoming>| {
            let service = service.clone();
            let gate = handler_gate.clone();
            async move {
                let fault = gate.admit(request.method(), request.uri().path());
                match fault {
                    Fault::None => {
                        let request = request.map(s3s::Body::from);
                        service.call(request).await.map_err(BoxError::from)
                    }
                    Fault::CloseConnection => {
                        Err(BoxError::from("connection closed by fault injection"))
                    }
                    Fault::ServiceUnavailable | Fault::InternalError => {
                        let request_id = format!(
                            "FAULT{:012}",
                            gate.next_request_id.fetch_add(1, Ordering::SeqCst)
                        );
                        let response = fault::error_response(fault, &request_id)
                            .expect("fault has a response");
                        Ok(response.map(s3s::Body::from))
                    }
                }
            }
        });

        let s3 = S3Server {
            server,
            gate,
            secret_access_key,
            root,
        };
        s3.client()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "failed to create bucket {BUCKET}: {}",
                    DisplayErrorContext(&err)
                )
            });
        s3
    }

    /// Returns the base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address())
    }

    pub fn bucket(&self) -> &str {
        BUCKET
    }

    pub fn access_key_id(&self) -> &str {
        ACCESS_KEY_ID
    }

    /// Returns the secret access key generated for this server.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Returns the directory that s3s-fs stores buckets in (one subdirectory
    /// per bucket, objects as files under it).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Builds a client with the valid credentials. It never reads the
    /// environment or profile files. Retries are disabled so that the
    /// request counts seen by tests match the calls made.
    pub fn client(&self) -> Client {
        self.client_with_secret(&self.secret_access_key)
    }

    /// Builds a client that signs with `secret_access_key` instead of the
    /// server's secret, for tests that check that authentication is enforced.
    pub fn client_with_secret(&self, secret_access_key: &str) -> Client {
        let credentials = Credentials::new(
            ACCESS_KEY_ID,
            secret_access_key,
            None,
            None,
            "mj-archive-test-harness",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(credentials)
            .retry_config(RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    /// Returns the environment variables that point a child process's AWS SDK
    /// at this server with valid credentials, plus `BUCKET_NAME`.
    ///
    /// `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` point at
    /// `/dev/null` so that profile files in `$HOME` cannot change the result.
    pub fn env(&self) -> Vec<(String, String)> {
        let endpoint = self.endpoint();
        [
            ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("BUCKET_NAME", BUCKET),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// Applies `fault` to every request from now on; `Fault::None` clears it.
    pub fn set_fault(&self, fault: Fault) {
        self.set_fault_rule(FaultRule::new(fault));
    }

    /// Replaces the current fault rule.
    pub fn set_fault_rule(&self, rule: FaultRule) {
        *self.gate.rule.lock().unwrap() = rule;
    }

    /// Returns the number of requests that were failed by a fault.
    pub fn faults_injected(&self) -> usize {
        self.gate.faults_injected.load(Ordering::SeqCst)
    }

    /// Returns the number of HTTP requests received, including faulted ones
    /// and the CreateBucket call made by `start`.
    pub fn requests(&self) -> usize {
        self.gate.requests.load(Ordering::SeqCst)
    }

    /// Returns `(method, path)` for every request received, in order. The path
    /// is percent-encoded as sent and has no query string, for example
    /// `("PUT", "/mj-archive-test/task-1/callback.json")`.
    pub fn request_log(&self) -> Vec<(String, String)> {
        self.gate.log.lock().unwrap().clone()
    }

    /// Returns the logged requests whose method can change state (everything
    /// except GET and HEAD).
    pub fn write_requests(&self) -> Vec<(String, String)> {
        self.request_log()
            .into_iter()
            .filter(|(method, _)| method != "GET" && method != "HEAD")
            .collect()
    }

    /// Resets the request counter, the request log and the fault counter.
    pub fn clear_request_log(&self) {
        self.gate.requests.store(0, Ordering::SeqCst);
        self.gate.faults_injected.store(0, Ordering::SeqCst);
        self.gate.log.lock().unwrap().clear();
    }

    /// Stores an object with the given content type, panicking on failure.
    pub async fn put_bytes(&self, key: &str, body: &[u8], content_type: &str) {
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|err| panic!("PutObject {key} failed: {}", DisplayErrorContext(&err)));
    }

    /// Returns the object's bytes, or `None` if the key does not exist.
    /// Panics on any other error.
    pub async fn get_bytes(&self, key: &str) -> Option<Vec<u8>> {
        let result = self
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
            Err(err) => panic!("GetObject {key} failed: {}", DisplayErrorContext(&err)),
        };

        let body = output
            .body
            .collect()
            .await
            .unwrap_or_else(|err| panic!("reading the body of {key} failed: {err}"));
        Some(body.into_bytes().to_vec())
    }

    /// Returns the object's attributes, or `None` if the key does not exist.
    /// Panics on any other error.
    pub async fn head(&self, key: &str) -> Option<ObjectHead> {
        let result = self
            .client()
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => return None,
            Err(err) => panic!("HeadObject {key} failed: {}", DisplayErrorContext(&err)),
        };

        Some(ObjectHead {
            content_type: output.content_type,
            content_length: output.content_length,
            content_disposition: output.content_disposition,
            metadata: output.metadata.unwrap_or_default(),
            e_tag: output.e_tag,
        })
    }

    /// Returns every key that starts with `prefix`, sorted.
    pub async fn list_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut continuation_token: Option<String> = None;

        loop {
            let output = self
                .client()
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .set_continuation_token(continuation_token.take())
                .send()
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "ListObjectsV2 {prefix:?} failed: {}",
                        DisplayErrorContext(&err)
                    )
                });

            keys.extend(
                output
                    .contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );

            match output.next_continuation_token() {
                Some(token) if output.is_truncated() == Some(true) => {
                    continuation_token = Some(token.to_owned())
                }
                _ => break,
            }
        }

        keys.sort();
        keys
    }

    /// Returns `(key, upload_id)` for every multipart upload that was created
    /// and neither completed nor aborted, sorted by key.
    pub async fn list_multipart_uploads(&self) -> Vec<(String, String)> {
        let output = self
            .client()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!("ListMultipartUploads failed: {}", DisplayErrorContext(&err))
            });

        let mut uploads: Vec<(String, String)> = output
            .uploads()
            .iter()
            .map(|upload| {
                let key = upload.key().unwrap_or_default().to_owned();
                let upload_id = upload.upload_id().unwrap_or_default().to_owned();
                (key, upload_id)
            })
            .collect();
        uploads.sort();
        uploads
    }
}
