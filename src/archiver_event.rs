//! One archiver invocation: the S3 event's callback keys to archived tasks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use tokio::time::Instant;

use crate::archive::{ArchiveError, Archiver};
use crate::manifest::ArchiveStatus;
use crate::report::error_chain;
use crate::s3_event::{self, EventKeyError};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not an S3 event notification (expected a \"Records\" array of S3 records)")]
    NotS3Event(#[source] serde_json::Error),
    #[error("S3 event record is unusable")]
    Record(#[source] EventKeyError),
    #[error("archiving {failed} of {total} callbacks failed; first: {first}")]
    Tasks {
        failed: usize,
        total: usize,
        first: String,
        #[source]
        source: ArchiveError,
    },
}

impl EventError {
    /// Returns a stable error type for the Runtime API, such as `ArchiveIncomplete`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotS3Event(_) => "NotS3Event",
            Self::Record(_) => "InvalidS3Record",
            Self::Tasks {
                source: ArchiveError::Incomplete { .. },
                ..
            } => "ArchiveIncomplete",
            Self::Tasks { .. } => "ArchiveFailed",
        }
    }
}

/// The invocation's result, returned to Lambda as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    pub archived: Vec<TaskSummary>,
    /// Keys that are not callbacks under this deployment's prefix and bucket.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    pub task_id: String,
    pub status: ArchiveStatus,
    pub results: usize,
}

/// Archives every callback an S3 event names.
///
/// Keys that are not `{prefix}{taskId}/callback.json` in this bucket are
/// ignored. Every callback is attempted; if any fails, the first error is
/// returned so that Lambda retries the event (archived results are reused).
pub async fn handle_event(
    archiver: &Archiver,
    event: serde_json::Value,
    deadline: Instant,
) -> Result<EventSummary, EventError> {
    // S3 sends `s3:TestEvent` (no Records) when a notification is configured.
    if event.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        tracing::info!("ignoring s3:TestEvent");
        return Ok(EventSummary {
            archived: Vec::new(),
            ignored: Vec::new(),
        });
    }
    let event: S3Event = serde_json::from_value(event).map_err(EventError::NotS3Event)?;

    let mut summary = EventSummary {
        archived: Vec::new(),
        ignored: Vec::new(),
    };
    let mut failures = Vec::new();
    let objects = s3_event::objects(&event);
    let total = objects.len();

    for object in objects {
        let object = object.map_err(EventError::Record)?;
        let task_id = (object.bucket == archiver.store().bucket())
            .then(|| archiver.layout().task_id_of_callback_key(&object.key))
            .flatten();
        let Some(task_id) = task_id else {
            tracing::info!(bucket = %object.bucket, key = %object.key, "ignoring object that is not a callback of this deployment");
            summary.ignored.push(object.key);
            continue;
        };

        match archiver.archive_stored(&task_id, deadline, false).await {
            Ok(manifest) => summary.archived.push(TaskSummary {
                task_id: manifest.task_id,
                status: manifest.status,
                results: manifest.results.len(),
            }),
            Err(err) => {
                tracing::error!(task_id = %task_id, key = %object.key, error = %error_chain(&err), "archive failed");
                failures.push(err);
            }
        }
    }

    let failed = failures.len();
    match failures.into_iter().next() {
        None => Ok(summary),
        Some(first) => Err(EventError::Tasks {
            failed,
            total,
            first: error_chain(&first),
            source: first,
        }),
    }
}

/// Lambda's maximum function timeout, used when the runtime reports no usable deadline.
const MAX_LAMBDA_TIMEOUT: Duration = Duration::from_secs(900);

/// Converts the Lambda deadline to a monotonic instant.
///
/// A deadline already in the past when the invocation starts is not usable:
/// cargo-lambda 1.9.2 `watch` sends `Lambda-Runtime-Deadline-Ms: 600000`
/// (a duration, not epoch milliseconds). Such a deadline is replaced by
/// Lambda's 900 s maximum, with a warning.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    let remaining = match deadline.duration_since(SystemTime::now()) {
        Ok(remaining) => remaining,
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64,
                fallback_secs = MAX_LAMBDA_TIMEOUT.as_secs(),
                "invocation deadline is already past; using Lambda's maximum timeout instead"
            );
            MAX_LAMBDA_TIMEOUT
        }
    };
    Instant::now() + remaining.min(MAX_LAMBDA_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_deadline_falls_back_to_lambda_maximum() {
        let deadline = deadline_instant(UNIX_EPOCH + Duration::from_millis(600_000));
        let remaining = deadline - Instant::now();

        assert!(remaining > Duration::from_secs(899), "{remaining:?}");
        assert!(remaining <= MAX_LAMBDA_TIMEOUT);
    }

    #[test]
    fn future_deadline_kept() {
        let deadline = deadline_instant(SystemTime::now() + Duration::from_secs(30));
        let remaining = deadline - Instant::now();

        assert!(
            remaining > Duration::from_secs(29) && remaining <= Duration::from_secs(30),
            "{remaining:?}"
        );
    }
}
