//! An emulator of the AWS Lambda Runtime API (version 2018-06-01) on
//! `127.0.0.1`, so that tests can run the real Lambda binaries as child
//! processes.
//!
//! Implemented endpoints, under `/2018-06-01/runtime`:
//! * `GET /invocation/next` waits until an event is queued, then returns it
//!   with the headers `Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms` (Unix epoch milliseconds, computed when the
//!   event is delivered), `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id`. When several processes poll at once, the
//!   event goes to one of them. A poll stops waiting when its connection
//!   closes, as it does when the process is killed, but a client that gives
//!   up and keeps the connection open can still receive the next event.
//! * `POST /invocation/{id}/response` and `POST /invocation/{id}/error`
//!   complete the invocation and get 202. An unknown or already completed
//!   id gets 400 with `errorType` `InvalidRequestID`.
//! * `POST /init/error` records an initialization error and gets 202.
//!
//! NOTE: streaming responses (`Lambda-Runtime-Function-Response-Mode:
//! streaming`) are read as one buffered body, and errors sent in their
//! trailers are not detected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::server::{BoxError, ServerThread};

/// ARN sent in `Lambda-Runtime-Invoked-Function-Arn` for every event.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:mj-archive-test";

/// Extra time that `RuntimeApi::invoke` waits past the deadline for the
/// function to report an outcome.
pub const OUTCOME_GRACE: Duration = Duration::from_secs(10);

const API_PREFIX: &str = "/2018-06-01/runtime";

/// The outcome of one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// The body the function posted to `/invocation/{id}/response`.
    Response(Vec<u8>),
    /// The error the function posted to `/invocation/{id}/error`.
    Error {
        error_type: String,
        error_message: String,
    },
    /// No outcome was posted within the wait time.
    TimedOut,
}

impl Invocation {
    /// Parses the response body as JSON. Panics, showing the outcome, if this
    /// is not a response or the body is not JSON.
    pub fn json(&self) -> Value {
        match self {
            Invocation::Response(body) => serde_json::from_slice(body).unwrap_or_else(|err| {
                panic!(
                    "the function response is not JSON ({err}): {}",
                    String::from_utf8_lossy(body)
                )
            }),
            other => panic!("expected a function response, got {other:?}"),
        }
    }

    pub fn is_response(&self) -> bool {
        matches!(self, Invocation::Response(_))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Invocation::Error { .. })
    }
}

/// An error reported to `/init/error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitError {
    pub error_type: String,
    pub error_message: String,
}

/// Returns the environment variables that lambda_runtime 1.5 reads at start-up.
///
/// `Config::from_env` in lambda_runtime 1.5.0 panics without
/// `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (an `i32`)
/// and `AWS_LAMBDA_FUNCTION_VERSION`, and lambda_runtime_api_client 1.1.1
/// panics without `AWS_LAMBDA_RUNTIME_API` (`host:port`). The log stream and
/// group names are optional there but always set by Lambda.
pub fn lambda_env(function_name: &str, api_address: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api_address.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2025/01/01/[$LATEST]00000000000000000000000000000000".to_owned(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

struct QueuedEvent {
    request_id: String,
    body: Bytes,
    deadline: Duration,
    outcome: oneshot::Sender<Invocation>,
}

struct ApiState {
    sender: mpsc::UnboundedSender<QueuedEvent>,
    /// Pollers take turns holding this lock while they wait for an event.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<QueuedEvent>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    init_errors: Mutex<Vec<InitError>>,
    waiting_pollers: AtomicUsize,
    delivered: AtomicUsize,
    request_id_prefix: String,
    next_request_number: AtomicU64,
}

impl ApiState {
    fn new_request_id(&self) -> String {
        let number = self.next_request_number.fetch_add(1, Ordering::SeqCst);
        format!("{}-0000-4000-8000-{number:012}", self.request_id_prefix)
    }
}

/// Decrements the waiting-poller count when a `/next` request ends, however it ends.
struct PollerGuard<'a>(&'a AtomicUsize);

impl Drop for PollerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running Runtime API emulator. Dropping it stops the server.
pub struct RuntimeApi {
    server: ServerThread,
    state: Arc<ApiState>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            sender,
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
            waiting_pollers: AtomicUsize::new(0),
            delivered: AtomicUsize::new(0),
            request_id_prefix: super::random_hex(4),
            next_request_number: AtomicU64::new(1),
        });

        let handler_state = state.clone();
        let server = ServerThread::spawn("runtime-api", move |request: Request<Incoming>| {
            let state = handler_state.clone();
            async move { route(&state, request).await }
        });
        RuntimeApi { server, state }
    }

    /// Returns `127.0.0.1:PORT`, the form `AWS_LAMBDA_RUNTIME_API` takes.
    pub fn address(&self) -> String {
        self.server.address().to_string()
    }

    /// Queues `event` and waits for its outcome for `deadline` plus `OUTCOME_GRACE`.
    /// `deadline` is the remaining time that the function receives in
    /// `Lambda-Runtime-Deadline-Ms`.
    pub async fn invoke(&self, event: Value, deadline: Duration) -> Invocation {
        self.invoke_with_timeout(event, deadline, deadline + OUTCOME_GRACE)
            .await
    }

    /// Queues `event` and waits at most `timeout` for its outcome. An event
    /// that times out before a process takes it is withdrawn from the queue.
    pub async fn invoke_with_timeout(
        &self,
        event: Value,
        deadline: Duration,
        timeout: Duration,
    ) -> Invocation {
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let queued = QueuedEvent {
            request_id: self.state.new_request_id(),
            body: Bytes::from(serde_json::to_vec(&event).expect("a JSON value serializes")),
            deadline,
            outcome: outcome_tx,
        };
        self.state
            .sender
            .send(queued)
            .expect("the emulator keeps its queue open while it runs");

        match tokio::time::timeout(timeout, outcome_rx).await {
            Ok(Ok(outcome)) => outcome,
            // The sender was dropped or the wait expired: no outcome arrived.
            Ok(Err(_)) | Err(_) => Invocation::TimedOut,
        }
    }

    /// Returns the first error reported to `/init/error`, if any.
    pub fn init_error(&self) -> Option<InitError> {
        self.state.init_errors.lock().unwrap().first().cloned()
    }

    /// Returns every error reported to `/init/error`, in order.
    pub fn init_errors(&self) -> Vec<InitError> {
        self.state.init_errors.lock().unwrap().clone()
    }

    /// Returns how many `/invocation/next` requests are waiting for an event,
    /// which is the number of idle function processes.
    pub fn waiting_pollers(&self) -> usize {
        self.state.waiting_pollers.load(Ordering::SeqCst)
    }

    /// Returns how many events have been delivered to a process.
    pub fn delivered(&self) -> usize {
        self.state.delivered.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` processes poll for events at the same
    /// time. Returns false if that did not happen within `timeout`.
    pub async fn wait_for_pollers(&self, count: usize, timeout: Duration) -> bool {
        let started = tokio::time::Instant::now();
        while self.waiting_pollers() < count {
            if started.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

async fn route(
    state: &ApiState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let method = request.method().clone();
    let Some(path) = request
        .uri()
        .path()
        .strip_prefix(API_PREFIX)
        .map(str::to_owned)
    else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({"errorMessage": "unknown path"}),
        ));
    };

    if method == Method::GET && path == "/invocation/next" {
        return Ok(next_event(state).await);
    }
    if method != Method::POST {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({"errorMessage": "unknown path"}),
        ));
    }

    if path == "/init/error" {
        let error = read_error(request).await?;
        state.init_errors.lock().unwrap().push(InitError {
            error_type: error.0,
            error_message: error.1,
        });
        return Ok(accepted());
    }

    let Some((request_id, action)) = path
        .strip_prefix("/invocation/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({"errorMessage": "unknown path"}),
        ));
    };
    let outcome = match action {
        "response" => {
            let body = request.into_body().collect().await?.to_bytes();
            Invocation::Response(body.to_vec())
        }
        "error" => {
            let (error_type, error_message) = read_error(request).await?;
            Invocation::Error {
                error_type,
                error_message,
            }
        }
        _ => {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                &json!({"errorMessage": "unknown path"}),
            ))
        }
    };

    let Some(waiter) = state.in_flight.lock().unwrap().remove(request_id) else {
        let body = json!({
            "errorType": "InvalidRequestID",
            "errorMessage": format!("no invocation in flight with request id {request_id}"),
        });
        return Ok(json_response(StatusCode::BAD_REQUEST, &body));
    };
    // The test may have stopped waiting; the outcome is then dropped.
    let _ = waiter.send(outcome);
    Ok(accepted())
}

/// Waits for the next event that someone still waits on and returns it with
/// the invocation headers.
async fn next_event(state: &ApiState) -> Response<Full<Bytes>> {
    state.waiting_pollers.fetch_add(1, Ordering::SeqCst);
    let _poller = PollerGuard(&state.waiting_pollers);

    let event = {
        let mut queue = state.queue.lock().await;
        loop {
            let event = queue
                .recv()
                .await
                .expect("the state holds a sender, so the queue never closes");
            if !event.outcome.is_closed() {
                break event;
            }
        }
    };

    state
        .in_flight
        .lock()
        .unwrap()
        .insert(event.request_id.clone(), event.outcome);
    state.delivered.fetch_add(1, Ordering::SeqCst);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let deadline_ms = (now + event.deadline).as_millis();
    let trace_id = format!(
        "Root=1-{:08x}-{}00000000;Parent={};Sampled=0",
        now.as_secs(),
        super::random_hex(8),
        super::random_hex(8)
    );

    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &event.request_id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", FUNCTION_ARN)
        .header("lambda-runtime-trace-id", trace_id)
        .body(Full::new(event.body))
        .expect("response parts are valid")
}

/// Reads `{"errorType": ..., "errorMessage": ...}`. A body that is not such
/// JSON becomes the message, with the type taken from the
/// `Lambda-Runtime-Function-Error-Type` header.
async fn read_error(request: Request<Incoming>) -> Result<(String, String), BoxError> {
    let header_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = request.into_body().collect().await?.to_bytes();

    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (field("errorType"), field("errorMessage")) {
        (Some(error_type), Some(error_message)) => Ok((error_type, error_message)),
        _ => Ok((header_type, String::from_utf8_lossy(&body).into_owned())),
    }
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response parts are valid")
}
