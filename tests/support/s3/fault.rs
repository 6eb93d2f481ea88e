//! Fault injection for `S3Server`: which requests fail and how.

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

/// How the server fails a request. Faults are applied before the request
/// reaches s3s, so a faulted request never changes the stored objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault: requests reach s3s.
    None,
    /// 503 with the S3 error code `SlowDown`, which the AWS SDK for Rust
    /// retries as a throttling error (aws-runtime 1.10).
    ServiceUnavailable,
    /// 500 with the S3 error code `InternalError`, which the AWS SDK for Rust
    /// retries as a transient error (aws-smithy-runtime 1.16).
    InternalError,
    /// The connection is closed without a response.
    CloseConnection,
}

/// A fault and the requests it applies to.
///
/// ```ignore
/// // Fail the next two writes with 503; reads keep working.
/// s3.set_fault_rule(FaultRule::new(Fault::ServiceUnavailable).methods(&["PUT", "POST"]).times(2));
/// ```
#[derive(Clone, Debug)]
pub struct FaultRule {
    pub fault: Fault,
    /// HTTP methods the fault applies to; empty means every method.
    pub methods: Vec<Method>,
    /// Substring that the request path (percent-encoded, without the query)
    /// must contain; `None` means every path.
    pub path_contains: Option<String>,
    /// Number of matching requests still to fail; `None` means no limit.
    /// The rule reverts to `Fault::None` when this reaches zero.
    pub remaining: Option<usize>,
}

impl FaultRule {
    /// Creates a rule that applies `fault` to every request until it is replaced.
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            fault,
            methods: Vec::new(),
            path_contains: None,
            remaining: None,
        }
    }

    /// Restricts the rule to the given HTTP methods, for example `&["PUT", "POST"]`.
    pub fn methods(mut self, methods: &[&str]) -> Self {
        self.methods = methods
            .iter()
            .map(|method| {
                Method::from_bytes(method.as_bytes())
                    .unwrap_or_else(|_| panic!("invalid HTTP method {method:?}"))
            })
            .collect();
        self
    }

    /// Restricts the rule to request paths that contain `fragment`, for
    /// example `"manifest.json"`.
    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Limits the rule to the next `count` matching requests.
    pub fn times(mut self, count: usize) -> Self {
        self.remaining = Some(count);
        self
    }

    /// Returns the fault for this request and counts it against `remaining`.
    pub(super) fn take(&mut self, method: &Method, path: &str) -> Fault {
        if self.fault == Fault::None {
            return Fault::None;
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Fault::None;
        }
        if let Some(fragment) = &self.path_contains {
            if !path.contains(fragment.as_str()) {
                return Fault::None;
            }
        }

        let fault = self.fault;
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *self = FaultRule::new(Fault::None);
            }
        }
        fault
    }
}

/// Builds the S3-style XML error response for `fault`, or `None` for
/// `Fault::None` and `Fault::CloseConnection`.
pub(super) fn error_response(fault: Fault, request_id: &str) -> Option<Response<Bytes>> {
    let (status, code, message) = match fault {
        Fault::ServiceUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        Fault::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        Fault::None | Fault::CloseConnection => return None,
    };

    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>{request_id}</RequestId></Error>"
    );
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", request_id)
        .body(Bytes::from(body))
        .expect("static response parts are valid");
    Some(response)
}
