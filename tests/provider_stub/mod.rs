//! A stand-in for the provider's task-details API on `127.0.0.1`, for tests
//! that run `mj-archive fetch` or the archiver's result-URL cross-check.
//!
//! It implements Kie AI's "Get Midjourney Task Details" endpoint,
//! `GET /api/v1/mj/record-info?taskId=...`, with the response shape of
//! `events/provider-record-info-*.json` (see `events/README.md` for where
//! that shape comes from):
//!
//! * `Authorization: Bearer <key>` is required. A missing or different key
//!   gets HTTP 401 with `{"code":401,"msg":...}`.
//! * A task set with `ProviderStub::set_task` gets HTTP 200 with
//!   `{"code":200,"msg":"success","data":{...}}`.
//! * An unknown task gets HTTP 200 with `{"code":422,"msg":"task not found","data":null}`.
//!   NOTE: the provider's docs do not say what an unknown task id gets,
//!   so 422 in the envelope is a guess.
//! * Any other path gets 404 and any other method 405.
//!
//! Every request, whatever its response, is recorded with its task id and
//! `Authorization` header. The server runs on its own thread with its own
//! tokio runtime, so it keeps serving while a test blocks its own thread.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Path of the task-details endpoint.
pub const RECORD_INFO_PATH: &str = "/api/v1/mj/record-info";

/// One request the stand-in received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The `taskId` query parameter, if present.
    pub task_id: Option<String>,
    /// The `Authorization` header as sent, if present.
    pub authorization: Option<String>,
}

/// The `data` object of a record-info response for one task.
#[derive(Clone, Debug)]
pub struct TaskRecord(Value);

impl TaskRecord {
    /// Builds a finished task (`successFlag` 1) with `prompt` in `paramJson` and `urls` as results.
    pub fn success(task_id: &str, prompt: &str, urls: &[String]) -> Self {
        let result_urls: Vec<Value> = urls.iter().map(|url| json!({"resultUrl": url})).collect();
        Self(json!({
            "taskId": task_id,
            "taskType": "mj_txt2img",
            "paramJson": json!({"prompt": prompt, "model": "midjourney"}).to_string(),
            "completeTime": 1_700_000_000_000u64,
            "resultInfoJson": {"resultUrls": result_urls},
            "successFlag": 1,
            "createTime": 1_699_999_940_000u64,
            "errorCode": null,
            "errorMessage": null,
        }))
    }

    /// Builds a task that is still generating (`successFlag` 0, `resultInfoJson` null).
    pub fn generating(task_id: &str, prompt: &str) -> Self {
        Self(json!({
            "taskId": task_id,
            "taskType": "mj_txt2img",
            "paramJson": json!({"prompt": prompt, "model": "midjourney"}).to_string(),
            "completeTime": null,
            "resultInfoJson": null,
            "successFlag": 0,
            "createTime": 1_700_000_060_000u64,
            "errorCode": null,
            "errorMessage": null,
        }))
    }

    /// Builds a task that failed at the provider (`successFlag` 2 or 3) with `message`.
    pub fn failed(task_id: &str, success_flag: i64, message: &str) -> Self {
        Self(json!({
            "taskId": task_id,
            "taskType": "mj_txt2img",
            "paramJson": json!({"prompt": "a failing prompt"}).to_string(),
            "completeTime": 1_700_000_000_000u64,
            "resultInfoJson": null,
            "successFlag": success_flag,
            "createTime": 1_699_999_940_000u64,
            "errorCode": 500,
            "errorMessage": message,
        }))
    }

    /// Returns the `data` object as JSON.
    pub fn data(&self) -> &Value {
        &self.0
    }
}

struct State {
    api_key: String,
    tasks: Mutex<HashMap<String, TaskRecord>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running stand-in. Dropping it stops the server and joins its thread.
pub struct ProviderStub {
    address: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProviderStub {
    /// Binds `127.0.0.1:0` and accepts `Authorization: Bearer {api_key}`.
    pub fn start(api_key: &str) -> ProviderStub {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("failed to bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("failed to make the listener non-blocking");
        let address = listener
            .local_addr()
            .expect("failed to read the listener address");

        let state = Arc::new(State {
            api_key: api_key.to_owned(),
            tasks: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let server_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("provider-stub".to_owned())
            .spawn(move || serve(listener, server_state, shutdown_rx))
            .expect("failed to spawn the provider stand-in thread");

        ProviderStub {
            address,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Returns `http://127.0.0.1:PORT`, the value for `PROVIDER_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sets the response for the task named in `record`, replacing an earlier one.
    pub fn set_task(&self, record: TaskRecord) {
        let task_id = record.0["taskId"]
            .as_str()
            .expect("a task record has a taskId")
            .to_owned();
        self.state.tasks.lock().unwrap().insert(task_id, record);
    }

    /// Returns every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Returns the number of requests received.
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }
}

impl Drop for ProviderStub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: std::net::TcpListener, state: Arc<State>, mut shutdown: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build the provider stand-in runtime");

    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("failed to register the listener");
        // Dropping the set when the loop ends aborts every open connection.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(respond(&state, request)) }
                        });
                        // A client that goes away mid-request is not an error for the tests.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
}

fn respond(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let task_id = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(name, _)| name == "taskId")
        .map(|(_, value)| value.into_owned());
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    state.requests.lock().unwrap().push(RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        task_id: task_id.clone(),
        authorization: authorization.clone(),
    });

    if request.uri().path() != RECORD_INFO_PATH {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"code": 404, "msg": "not found"}),
        );
    }
    if request.method() != Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"code": 405, "msg": "method not allowed"}),
        );
    }
    let expected = format!("Bearer {}", state.api_key);
    if authorization.as_deref() != Some(expected.as_str()) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "msg": "You do not have access permissions"}),
        );
    }

    let record = task_id.and_then(|id| state.tasks.lock().unwrap().get(&id).cloned());
    match record {
        Some(record) => json_response(
            StatusCode::OK,
            json!({"code": 200, "msg": "success", "data": record.0}),
        ),
        None => json_response(
            StatusCode::OK,
            json!({"code": 422, "msg": "task not found", "data": null}),
        ),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response parts are valid")
}
