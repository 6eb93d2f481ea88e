//! `manifest.json`: what was archived for one task.

use serde::{Deserialize, Serialize};

/// The state of a task's archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveStatus {
    /// Written while results are being archived; a crash leaves it so.
    InProgress,
    /// Every result is archived.
    Complete,
    /// Every result is settled, and some failed permanently.
    CompleteWithErrors,
    /// Some results failed transiently or ran out of time; the invocation
    /// failed so that Lambda retries it.
    Incomplete,
    /// The provider reported a failed generation; nothing was downloaded.
    ProviderFailed,
}

impl ArchiveStatus {
    /// Returns the name used in `manifest.json`, such as `complete_with_errors`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Complete => "complete",
            Self::CompleteWithErrors => "complete_with_errors",
            Self::Incomplete => "incomplete",
            Self::ProviderFailed => "provider_failed",
        }
    }

    /// Returns whether a re-delivered event has nothing left to do.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Complete | Self::CompleteWithErrors | Self::ProviderFailed
        )
    }
}

/// Reason one result was not archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The URL is not a valid http(s) URL.
    InvalidUrl,
    /// The source guard rejected the URL or an address it resolved to.
    Refused,
    /// The provider's task details do not list this URL.
    NotConfirmed,
    /// The source returned a 4xx status.
    HttpStatus,
    /// The body is not an image or video.
    NotMedia,
    /// The body is larger than MAX_RESULT_BYTES.
    TooLarge,
    /// The body has no bytes.
    Empty,
    /// A transient failure (5xx, timeout, reset, truncation) that persisted.
    Transient,
    /// The Lambda deadline came first.
    Deadline,
    /// S3 failed while storing the result.
    Storage,
}

impl FailureKind {
    /// Returns the name used in `manifest.json`, such as `not_media`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::Refused => "refused",
            Self::NotConfirmed => "not_confirmed",
            Self::HttpStatus => "http_status",
            Self::NotMedia => "not_media",
            Self::TooLarge => "too_large",
            Self::Empty => "empty",
            Self::Transient => "transient",
            Self::Deadline => "deadline",
            Self::Storage => "storage",
        }
    }

    /// Returns whether a later run may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Deadline | Self::Storage)
    }
}

/// A failure recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// One entry per URL in `resultUrls`, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultEntry {
    pub index: usize,
    pub source_url: String,
    pub key: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: Option<String>,
    pub error: Option<ResultFailure>,
}

impl ResultEntry {
    pub fn is_archived(&self) -> bool {
        self.error.is_none() && self.key.is_some()
    }

    pub fn failed(index: usize, source_url: &str, kind: FailureKind, message: String) -> Self {
        Self {
            index,
            source_url: source_url.to_owned(),
            key: None,
            content_type: None,
            bytes: None,
            sha256: None,
            error: Some(ResultFailure { kind, message }),
        }
    }
}

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub task_id: String,
    pub status: ArchiveStatus,
    pub provider_code: i64,
    pub provider_msg: Option<String>,
    /// `promptJson` parsed as JSON, or the raw string when it is not JSON.
    pub prompt: Option<serde_json::Value>,
    /// Origin of the task: `callback` or `provider_api`.
    pub source: String,
    pub results: Vec<ResultEntry>,
    /// RFC 3339 time of this write.
    pub updated_at: String,
    /// Version of mj-archive that wrote it.
    pub archiver_version: String,
}

impl Manifest {
    /// Status once every result has an entry.
    pub fn settle_status(results: &[ResultEntry]) -> ArchiveStatus {
        let retryable = results
            .iter()
            .any(|r| r.error.as_ref().is_some_and(|e| e.kind.is_retryable()));
        if retryable {
            ArchiveStatus::Incomplete
        } else if results.iter().all(ResultEntry::is_archived) {
            ArchiveStatus::Complete
        } else {
            ArchiveStatus::CompleteWithErrors
        }
    }
}

/// Formats the current time as RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
    DateTime::from(std::time::SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(index: usize) -> ResultEntry {
        ResultEntry {
            index,
            source_url: "https://h/x.png".into(),
            key: Some("t/0.png".into()),
            content_type: Some("image/png".into()),
            bytes: Some(1),
            sha256: Some("00".into()),
            error: None,
        }
    }

    #[test]
    fn status_from_results() {
        let refused = ResultEntry::failed(1, "http://x", FailureKind::Refused, "no".into());
        let transient = ResultEntry::failed(2, "https://x", FailureKind::Transient, "503".into());

        assert_eq!(Manifest::settle_status(&[ok(0)]), ArchiveStatus::Complete);
        assert_eq!(Manifest::settle_status(&[]), ArchiveStatus::Complete);
        assert_eq!(
            Manifest::settle_status(&[ok(0), refused.clone()]),
            ArchiveStatus::CompleteWithErrors
        );
        assert_eq!(
            Manifest::settle_status(&[ok(0), refused, transient]),
            ArchiveStatus::Incomplete
        );
    }

    #[test]
    fn names_match_serialized_form() {
        for status in [
            ArchiveStatus::InProgress,
            ArchiveStatus::Complete,
            ArchiveStatus::CompleteWithErrors,
            ArchiveStatus::Incomplete,
            ArchiveStatus::ProviderFailed,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for kind in [
            FailureKind::InvalidUrl,
            FailureKind::Refused,
            FailureKind::NotConfirmed,
            FailureKind::HttpStatus,
            FailureKind::NotMedia,
            FailureKind::TooLarge,
            FailureKind::Empty,
            FailureKind::Transient,
            FailureKind::Deadline,
            FailureKind::Storage,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn serialized_field_names() {
        let value = serde_json::to_value(ResultEntry::failed(
            0,
            "u",
            FailureKind::NotMedia,
            "m".into(),
        ))
        .unwrap();

        assert_eq!(
            value,
            serde_json::json!({"index":0,"source_url":"u","key":null,"content_type":null,
                "bytes":null,"sha256":null,"error":{"kind":"not_media","message":"m"}})
        );
    }
}
