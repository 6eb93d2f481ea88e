//! The receiver: authenticate a callback, store it, then respond.
//!
//! It returns 2xx only for a callback that is stored (or was stored
//! before), so a 5xx makes the provider retry and no callback is lost.
//! The response costs one small conditional PutObject.

use std::time::SystemTime;

use bytes::Bytes;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::callback::{Callback, CallbackError};
use crate::config::ReceiverConfig;
use crate::metrics::Metrics;
use crate::report::error_chain;
use crate::secret::Secret;
use crate::signature::{SignatureError, SignatureVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::store::{CreateOutcome, Store, StoreError};
use crate::task_id::TaskId;

/// Rejection of a request. [`ReceiveError::status`] is the one place that
/// maps errors to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("method {0} is not allowed; the provider sends POST")]
    MethodNotAllowed(Method),
    #[error("body is {len} bytes, the maximum is {max} (MAX_CALLBACK_BYTES)")]
    BodyTooLarge { len: usize, max: usize },
    #[error("missing token query parameter; append ?token=<CALLBACK_TOKEN> to the callback URL")]
    MissingToken,
    #[error("invalid token query parameter")]
    InvalidToken,
    #[error("invalid webhook signature")]
    Signature(#[source] SignatureError),
    #[error("invalid callback")]
    InvalidCallback(#[source] CallbackError),
    #[error("could not store the callback of task {task_id}; the provider retries later")]
    Store {
        task_id: TaskId,
        #[source]
        source: Box<StoreError>,
    },
}

impl ReceiveError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingToken | Self::InvalidToken | Self::Signature(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidCallback(_) => StatusCode::BAD_REQUEST,
            Self::Store { source, .. } if source.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short machine-readable name for the response body.
    fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::MissingToken | Self::InvalidToken | Self::Signature(_) => "unauthorized",
            Self::InvalidCallback(_) => "invalid_callback",
            Self::Store { .. } => "storage_unavailable",
        }
    }

    /// Builds the message for the caller: the whole chain for client errors,
    /// without S3 internals for server errors.
    fn public_message(&self) -> String {
        match self {
            Self::Store { .. } => self.to_string(),
            _ => error_chain(self),
        }
    }
}

/// Outcome of an accepted callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub task_id: TaskId,
    pub key: String,
    pub outcome: CreateOutcome,
    pub provider_code: i64,
}

/// Handles callbacks for one bucket and configuration.
pub struct Receiver {
    store: Store,
    config: ReceiverConfig,
    verifier: Option<SignatureVerifier>,
    metrics: Metrics,
}

impl Receiver {
    pub fn new(store: Store, config: ReceiverConfig, metrics: Metrics) -> Self {
        let verifier = config
            .hmac_key
            .clone()
            .map(|key| SignatureVerifier::new(key, config.tolerance));
        Self {
            store,
            config,
            verifier,
            metrics,
        }
    }

    /// Handles one request with the system clock.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.handle_at(request, SystemTime::now()).await
    }

    /// Handles one request as if the time were `now`.
    pub async fn handle_at(&self, request: Request, now: SystemTime) -> Response<Body> {
        match self.accept(&request, now).await {
            Ok(accepted) => {
                let duplicate = accepted.outcome == CreateOutcome::AlreadyExists;
                tracing::info!(
                    task_id = %accepted.task_id,
                    key = %accepted.key,
                    duplicate,
                    provider_code = accepted.provider_code,
                    "callback accepted"
                );
                self.metrics.callback_received(duplicate);
                let status = if duplicate { "duplicate" } else { "stored" };
                json_response(
                    StatusCode::OK,
                    json!({
                        "status": status,
                        "taskId": accepted.task_id.as_str(),
                        "key": accepted.key,
                        "providerCode": accepted.provider_code,
                    }),
                )
            }
            Err(err) => {
                let status = err.status();
                if status.is_server_error() {
                    tracing::error!(status = status.as_u16(), error = %error_chain(&err), "callback not stored");
                } else {
                    tracing::warn!(status = status.as_u16(), error = %error_chain(&err), "callback rejected");
                }
                self.metrics.callback_rejected(status.as_u16());
                let mut response = json_response(
                    status,
                    json!({"error": err.code(), "message": err.public_message()}),
                );
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                }
                response
            }
        }
    }

    /// Checks, parses and stores one callback.
    pub async fn accept(
        &self,
        request: &Request,
        now: SystemTime,
    ) -> Result<Accepted, ReceiveError> {
        if request.method() != Method::POST {
            return Err(ReceiveError::MethodNotAllowed(request.method().clone()));
        }

        let body: &[u8] = request.body().as_ref();
        if body.len() > self.config.max_body_bytes {
            return Err(ReceiveError::BodyTooLarge {
                len: body.len(),
                max: self.config.max_body_bytes,
            });
        }

        if let Some(expected) = &self.config.token {
            check_token(request, expected)?;
        }

        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let signature_headers = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        if self.verifier.is_some() {
            match signature_headers {
                (None, _) => return Err(ReceiveError::Signature(SignatureError::MissingTimestamp)),
                (_, None) => return Err(ReceiveError::Signature(SignatureError::MissingSignature)),
                _ => {}
            }
        }

        let callback =
            Callback::parse(body, self.config.limits).map_err(ReceiveError::InvalidCallback)?;
        if let Some(verifier) = &self.verifier {
            verifier
                .verify(
                    callback.task_id.as_str(),
                    signature_headers.0,
                    signature_headers.1,
                    now,
                )
                .map_err(ReceiveError::Signature)?;
        }

        let key = self.config.storage.layout.callback_key(&callback.task_id);
        let outcome = self
            .store
            .create_if_absent(&key, Bytes::copy_from_slice(body), "application/json")
            .await
            .map_err(|source| ReceiveError::Store {
                task_id: callback.task_id.clone(),
                source: Box::new(source),
            })?;

        Ok(Accepted {
            task_id: callback.task_id,
            key,
            outcome,
            provider_code: callback.code,
        })
    }
}

fn check_token(request: &Request, expected: &Secret) -> Result<(), ReceiveError> {
    let query = request.query_string_parameters();
    let given = query.first("token").ok_or(ReceiveError::MissingToken)?;
    // Constant-time for equal lengths; the length of the token is not secret.
    let equal: bool = given.as_bytes().ct_eq(expected.expose().as_bytes()).into();
    if equal {
        Ok(())
    } else {
        Err(ReceiveError::InvalidToken)
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
