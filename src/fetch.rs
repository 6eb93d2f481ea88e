//! HTTP GET of result URLs, through the source guard.

use std::sync::Arc;

use reqwest::redirect;
use url::Url;

use crate::config::TransferConfig;
use crate::source_guard::{GuardedResolver, SourceError, SourcePolicy};

/// Failure of a GET of a result URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("source refused before any request: {0}")]
    Refused(#[source] SourceError),
    #[error("source answered HTTP {status}")]
    Status { status: u16 },
    #[error("redirect not followed")]
    Redirect(#[source] reqwest::Error),
    #[error("request to the source failed")]
    Request(#[source] reqwest::Error),
}

impl FetchError {
    /// Returns whether a later attempt may succeed: 5xx, 408, 429, timeouts
    /// and connection failures, but not other 4xx statuses or refused sources.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused(_) | Self::Redirect(_) => false,
            Self::Status { status } => *status >= 500 || *status == 408 || *status == 429,
            Self::Request(_) => true,
        }
    }

    /// Classifies a client error, finding a [`SourceError`] raised by the
    /// resolver or the redirect policy anywhere in its source chain.
    pub fn from_reqwest(err: reqwest::Error) -> Self {
        if let Some(refused) = find_source_error(&err) {
            return Self::Refused(refused);
        }
        if err.is_redirect() {
            return Self::Redirect(err);
        }
        Self::Request(err)
    }
}

fn find_source_error(err: &(dyn std::error::Error + 'static)) -> Option<SourceError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<SourceError>() {
            return Some(found.clone());
        }
        current = e.source();
    }
    None
}

/// An HTTP client that only reaches sources allowed by a [`SourcePolicy`].
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<SourcePolicy>,
}

impl Fetcher {
    pub fn new(policy: SourcePolicy, transfer: &TransferConfig) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let redirect_policy = {
            let policy = policy.clone();
            let max = transfer.max_redirects;
            redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(format!("more than {max} redirects"));
                }
                match policy.check_url(attempt.url().as_str()) {
                    Ok(_) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            })
        };

        let client = reqwest::Client::builder()
            .user_agent(concat!("mj-archive/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .redirect(redirect_policy)
            .connect_timeout(transfer.connect_timeout)
            .read_timeout(transfer.read_timeout)
            .build()?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> &SourcePolicy {
        &self.policy
    }

    /// Checks the URL, sends the GET and checks the status; the body is left
    /// to stream.
    pub async fn get(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        let url = self
            .policy
            .check_url(url.as_str())
            .map_err(FetchError::Refused)?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(FetchError::from_reqwest)?;

        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
            });
        }
        Ok(response)
    }
}
