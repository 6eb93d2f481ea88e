//! An HTTP/1.1 origin on `127.0.0.1` that serves the sample files in
//! `tests/data` and generated bodies, with routes that misbehave on purpose.
//!
//! `{name}` is a file name in `tests/data` (no directories). Files are read
//! from disk on every request. Unknown routes and files get 404.
//!
//! * `GET /files/{name}`: the file with the Content-Type of its extension
//!   (`png`, `jpeg`/`jpg`, `webp`, `gif`, `mp4`; anything else is
//!   `application/octet-stream`) and a Content-Length.
//! * `GET /chunked/{name}`: the same bytes with chunked transfer encoding and
//!   no Content-Length, in chunks of `STREAM_CHUNK_SIZE` (16 KiB).
//! * `GET /typed/{name}?type=CONTENT_TYPE`: the file with the given
//!   Content-Type. `type=none`, or no `type`, sends no Content-Type header.
//! * `GET /flaky/{name}?fail=N&status=CODE`: the first N (default 1)
//!   requests for this exact request target (path and query) get CODE
//!   (default 503) with a short text body, later ones get 200 with the file.
//! * `GET /truncate/{name}?after=BYTES`: sends the full Content-Length but
//!   closes the connection after BYTES bytes of body (BYTES should be less
//!   than the file size). With `&chunked=1` the body is chunked and the
//!   connection closes without the terminating chunk.
//! * `GET /drip/{name}?chunk=BYTES&interval_ms=MS`: the file with a
//!   Content-Length, sent in chunks of BYTES (default 1024) with a pause of
//!   MS (default 50) before every chunk after the first.
//! * `GET /redirect?to=URL&status=CODE`: a redirect to URL with CODE (one of
//!   301, 302, 303, 307, 308; default 302).
//! * `GET /redirect-chain?hops=N&to=URL`: N redirects (302) in a row, N >= 1;
//!   the last one points at URL. Each hop is an absolute URL on this origin.
//! * `GET /status/{code}`: that status (200 to 599) with a small `text/html`
//!   body (empty for 204 and 304).
//! * `GET /empty`: 200 with `Content-Type: image/png` and zero bytes.
//! * `GET /generated/{bytes}?type=TYPE&seed=S&chunked=0|1`: exactly `bytes`
//!   bytes of the sequence of `generated_bytes(bytes, S)`, produced 64 KiB at
//!   a time so that bodies of several GiB use no memory. TYPE defaults to
//!   `application/octet-stream`, S to 0. Content-Length is sent unless
//!   `chunked=1`.
//! * `GET /html-as-image`: 200 with an HTML error page and
//!   `Content-Type: text/html; charset=utf-8`, as a CDN might serve in place
//!   of an image.
//!
//! Every request, including those that get 404, is counted by its exact
//! request target in `Origin::hits`.

mod generated;

// Each test binary uses only some of these re-exports.
#[allow(unused_imports)]
pub use generated::{generated_bytes, generated_sha256, Generator};

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};

use super::server::{BoxError, ServerThread};

/// Chunk size of the `/chunked/` route.
pub const STREAM_CHUNK_SIZE: usize = 16 * 1024;

/// Pause before a `/truncate/` response closes its connection, so that the
/// bytes sent before it are flushed to the client first.
const TRUNCATE_FLUSH_DELAY: Duration = Duration::from_millis(100);

type OriginBody = UnsyncBoxBody<Bytes, BoxError>;

/// Request counts shared with the server thread.
#[derive(Default)]
struct Hits {
    by_target: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<String>>,
    total: AtomicUsize,
}

impl Hits {
    /// Records a request and returns how many times this target has been requested, this one included.
    fn record(&self, target: &str) -> usize {
        self.total.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(target.to_owned());

        let mut by_target = self.by_target.lock().unwrap();
        let count = by_target.entry(target.to_owned()).or_insert(0);
        *count += 1;
        *count
    }
}

/// A running origin server. Dropping it stops the server.
pub struct Origin {
    server: ServerThread,
    hits: Arc<Hits>,
}

impl Origin {
    pub async fn start() -> Origin {
        let hits = Arc::new(Hits::default());
        let handler_hits = hits.clone();
        let server = ServerThread::spawn("origin", move |request: Request<Incoming>| {
            let hits = handler_hits.clone();
            async move { Ok::<_, BoxError>(route(&hits, request).await) }
        });
        Origin { server, hits }
    }

    /// Returns `http://127.0.0.1:PORT` followed by `path_and_query`
    /// (a leading `/` is added if missing).
    pub fn url(&self, path_and_query: &str) -> String {
        let separator = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!(
            "http://{}{separator}{path_and_query}",
            self.server.address()
        )
    }

    /// Returns `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.server.address().to_string()
    }

    /// Returns how many requests had exactly this request target (path and
    /// query as sent, for example `/flaky/docs-screenshot.png?fail=2`).
    pub fn hits(&self, path_and_query: &str) -> usize {
        self.hits
            .by_target
            .lock()
            .unwrap()
            .get(path_and_query)
            .copied()
            .unwrap_or(0)
    }

    /// Returns the number of requests received on every route.
    pub fn total_hits(&self) -> usize {
        self.hits.total.load(Ordering::SeqCst)
    }

    /// Returns the request target of every request received, in order.
    pub fn request_log(&self) -> Vec<String> {
        self.hits.log.lock().unwrap().clone()
    }
}

/// Returns the Content-Type for a file name by its extension.
pub fn content_type_for(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpeg" | "jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

async fn route(hits: &Hits, request: Request<Incoming>) -> Response<OriginBody> {
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let hit_number = hits.record(&target);

    let path = request.uri().path();
    let query = parse_query(request.uri().query());

    if let Some(name) = path.strip_prefix("/files/") {
        return serve_file(name, None);
    }
    if let Some(name) = path.strip_prefix("/chunked/") {
        return serve_chunked(name);
    }
    if let Some(name) = path.strip_prefix("/typed/") {
        let content_type = query.get("type").map(String::as_str).unwrap_or("none");
        return serve_file(name, Some(content_type));
    }
    if let Some(name) = path.strip_prefix("/flaky/") {
        return serve_flaky(name, &query, hit_number);
    }
    if let Some(name) = path.strip_prefix("/truncate/") {
        return serve_truncated(name, &query);
    }
    if let Some(name) = path.strip_prefix("/drip/") {
        return serve_drip(name, &query);
    }
    if let Some(size) = path.strip_prefix("/generated/") {
        return serve_generated(size, &query);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return serve_status(code);
    }

    match path {
        "/redirect" => serve_redirect(&query),
        "/redirect-chain" => {
            let host = request
                .headers()
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_owned();
            serve_redirect_chain(&host, &query)
        }
        "/empty" => response(StatusCode::OK, Some("image/png"), full(Bytes::new())),
        "/html-as-image" => response(
            StatusCode::OK,
            Some("text/html; charset=utf-8"),
            full(Bytes::from_static(
                b"<!DOCTYPE html><html><head><title>Error</title></head>\
                  <body><h1>Something went wrong</h1><p>The image is not available.</p></body></html>",
            )),
        ),
        _ => not_found(),
    }
}

fn serve_file(name: &str, content_type: Option<&str>) -> Response<OriginBody> {
    let Some(data) = read_data_file(name) else {
        return not_found();
    };
    let content_type = match content_type {
        None => Some(content_type_for(name)),
        Some("none") => None,
        Some(explicit) => Some(explicit),
    };
    response(StatusCode::OK, content_type, full(data))
}

fn serve_chunked(name: &str) -> Response<OriginBody> {
    let Some(data) = read_data_file(name) else {
        return not_found();
    };
    let chunks: Vec<Result<Bytes, BoxError>> = (0..data.len())
        .step_by(STREAM_CHUNK_SIZE)
        .map(|start| Ok(data.slice(start..(start + STREAM_CHUNK_SIZE).min(data.len()))))
        .collect();
    response(
        StatusCode::OK,
        Some(content_type_for(name)),
        streamed(stream::iter(chunks)),
    )
}

fn serve_flaky(
    name: &str,
    query: &HashMap<String, String>,
    hit_number: usize,
) -> Response<OriginBody> {
    let failures: usize = query_number(query, "fail", 1);
    let status: u16 = query_number(query, "status", 503);
    if hit_number <= failures {
        let Ok(status) = StatusCode::from_u16(status) else {
            return bad_request("invalid status");
        };
        let body = format!("failure {hit_number} of {failures}\n");
        return response(status, Some("text/plain"), full(Bytes::from(body)));
    }
    serve_file(name, None)
}

fn serve_truncated(name: &str, query: &HashMap<String, String>) -> Response<OriginBody> {
    let Some(data) = read_data_file(name) else {
        return not_found();
    };
    let after: usize = query_number(query, "after", data.len() / 2);
    let chunked = query.get("chunked").is_some_and(|value| value == "1");

    let sent = data.slice(..after.min(data.len()));
    let failure = async {
        tokio::time::sleep(TRUNCATE_FLUSH_DELAY).await;
        Err(BoxError::from(
            "body truncated on purpose by the test origin",
        ))
    };
    let body = streamed(stream::iter([Ok(sent)]).chain(stream::once(failure)));

    let mut response = response(StatusCode::OK, Some(content_type_for(name)), body);
    if !chunked {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, data.len().into());
    }
    response
}

fn serve_drip(name: &str, query: &HashMap<String, String>) -> Response<OriginBody> {
    let Some(data) = read_data_file(name) else {
        return not_found();
    };
    let chunk_size: usize = query_number(query, "chunk", 1024).max(1);
    let interval = Duration::from_millis(query_number(query, "interval_ms", 50));
    let total = data.len();

    let chunks = stream::unfold(0usize, move |offset| {
        let data = data.clone();
        async move {
            if offset >= data.len() {
                return None;
            }
            if offset > 0 {
                tokio::time::sleep(interval).await;
            }
            let end = (offset + chunk_size).min(data.len());
            Some((Ok(data.slice(offset..end)), end))
        }
    });

    let mut response = response(
        StatusCode::OK,
        Some(content_type_for(name)),
        streamed(chunks),
    );
    response.headers_mut().insert(CONTENT_LENGTH, total.into());
    response
}

fn serve_generated(size: &str, query: &HashMap<String, String>) -> Response<OriginBody> {
    let Ok(len) = size.parse::<u64>() else {
        return bad_request("the size must be a number of bytes");
    };
    let seed: u64 = query_number(query, "seed", 0);
    let chunked = query.get("chunked").is_some_and(|value| value == "1");
    let content_type = query
        .get("type")
        .cloned()
        .unwrap_or_else(|| "application/octet-stream".to_owned());

    let chunks = stream::unfold(Generator::new(len, seed), |mut generator| async move {
        generator.next_chunk().map(|chunk| (Ok(chunk), generator))
    });

    let mut response = response(StatusCode::OK, Some(&content_type), streamed(chunks));
    if !chunked {
        response.headers_mut().insert(CONTENT_LENGTH, len.into());
    }
    response
}

fn serve_status(code: &str) -> Response<OriginBody> {
    let status = match code
        .parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
    {
        Some(status) if (200..=599).contains(&status.as_u16()) => status,
        _ => return bad_request("the status must be a number from 200 to 599"),
    };
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return response(status, None, full(Bytes::new()));
    }

    let reason = status.canonical_reason().unwrap_or("");
    let body = format!(
        "<html><body><h1>{} {reason}</h1></body></html>",
        status.as_u16()
    );
    response(
        status,
        Some("text/html; charset=utf-8"),
        full(Bytes::from(body)),
    )
}

fn serve_redirect(query: &HashMap<String, String>) -> Response<OriginBody> {
    let Some(location) = query.get("to") else {
        return bad_request("missing the to parameter");
    };
    let status: u16 = query_number(query, "status", 302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        return bad_request("the status must be 301, 302, 303, 307 or 308");
    }
    redirect(
        StatusCode::from_u16(status).expect("listed status is valid"),
        location,
    )
}

fn serve_redirect_chain(host: &str, query: &HashMap<String, String>) -> Response<OriginBody> {
    let Some(destination) = query.get("to") else {
        return bad_request("missing the to parameter");
    };
    let hops: u32 = query_number(query, "hops", 1);
    if hops == 0 {
        return bad_request("hops must be at least 1");
    }
    if hops == 1 {
        return redirect(StatusCode::FOUND, destination);
    }

    let next_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hops", &(hops - 1).to_string())
        .append_pair("to", destination)
        .finish();
    redirect(
        StatusCode::FOUND,
        &format!("http://{host}/redirect-chain?{next_query}"),
    )
}

/// Reads `tests/data/{name}`, or returns `None` for a missing file or a name
/// that is not a plain file name.
fn read_data_file(name: &str) -> Option<Bytes> {
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return None;
    }
    std::fs::read(super::data_dir().join(name))
        .ok()
        .map(Bytes::from)
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Returns the query parameter parsed as a number, or `default` if it is
/// missing or not a number.
fn query_number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
    default: T,
) -> T {
    query
        .get(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn full(bytes: Bytes) -> OriginBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn streamed<S>(chunks: S) -> OriginBody
where
    S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    StreamBody::new(chunks.map_ok(Frame::data)).boxed_unsync()
}

fn response(
    status: StatusCode,
    content_type: Option<&str>,
    body: OriginBody,
) -> Response<OriginBody> {
    let mut builder = Response::builder().status(status);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder.body(body).expect("response parts are valid")
}

fn redirect(status: StatusCode, location: &str) -> Response<OriginBody> {
    let mut response = response(
        status,
        Some("text/plain"),
        full(Bytes::from_static(b"redirecting\n")),
    );
    match location.parse() {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
            response
        }
        Err(_) => bad_request("the redirect target is not a valid header value"),
    }
}

fn not_found() -> Response<OriginBody> {
    response(
        StatusCode::NOT_FOUND,
        Some("text/plain"),
        full(Bytes::from_static(b"not found\n")),
    )
}

fn bad_request(message: &str) -> Response<OriginBody> {
    let body = format!("{message}\n");
    response(
        StatusCode::BAD_REQUEST,
        Some("text/plain"),
        full(Bytes::from(body)),
    )
}
