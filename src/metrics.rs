//! CloudWatch metrics as embedded metric format (EMF) lines on stdout.
//!
//! Lambda sends stdout to CloudWatch Logs, which extracts one metric per
//! name in `_aws.CloudWatchMetrics` (namespace `MjArchive`, dimension
//! `Function`). No API call is made, so metrics add no latency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::manifest::{ArchiveStatus, Manifest, ResultEntry};

pub const NAMESPACE: &str = "MjArchive";

/// Emits EMF lines for one function; a disabled instance emits nothing.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    function: Option<String>,
}

impl Metrics {
    pub fn disabled() -> Self {
        Self { function: None }
    }

    /// Enabled when running in Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set).
    pub fn from_lambda_env() -> Self {
        Self {
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }

    /// Builds the EMF document for `values` (name, value, unit).
    pub fn document(function: &str, values: &[(&str, f64, &str)], now: SystemTime) -> Value {
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let definitions: Vec<Value> = values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
            .collect();

        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert("Function".into(), json!(function));
        for (name, value, _) in values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    fn emit(&self, values: &[(&str, f64, &str)]) {
        if let Some(function) = &self.function {
            println!("{}", Self::document(function, values, SystemTime::now()));
        }
    }

    /// Records a callback accepted with 2xx (`stored` or `duplicate`).
    pub fn callback_received(&self, duplicate: bool) {
        self.emit(&[
            ("CallbacksReceived", 1.0, "Count"),
            (
                "CallbacksDuplicate",
                f64::from(u8::from(duplicate)),
                "Count",
            ),
        ]);
    }

    /// Records a callback rejected with 4xx or 5xx.
    pub fn callback_rejected(&self, status: u16) {
        let server_error = status >= 500;
        self.emit(&[
            (
                "CallbacksRejected",
                f64::from(u8::from(!server_error)),
                "Count",
            ),
            (
                "CallbacksFailed",
                f64::from(u8::from(server_error)),
                "Count",
            ),
        ]);
    }

    pub fn result_settled(&self, entry: &ResultEntry) {
        let archived = entry.is_archived();
        self.emit(&[
            ("ResultsArchived", f64::from(u8::from(archived)), "Count"),
            ("ResultsFailed", f64::from(u8::from(!archived)), "Count"),
            ("BytesArchived", entry.bytes.unwrap_or(0) as f64, "Bytes"),
        ]);
    }

    pub fn task_settled(&self, manifest: &Manifest, elapsed: Duration) {
        let incomplete = manifest.status == ArchiveStatus::Incomplete;
        self.emit(&[
            (
                "ArchiveDuration",
                elapsed.as_secs_f64() * 1000.0,
                "Milliseconds",
            ),
            ("TasksIncomplete", f64::from(u8::from(incomplete)), "Count"),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_shape() {
        let document = Metrics::document(
            "receiver",
            &[("CallbacksReceived", 1.0, "Count")],
            UNIX_EPOCH + Duration::from_millis(42),
        );

        assert_eq!(
            document,
            json!({
                "_aws": {"Timestamp": 42, "CloudWatchMetrics": [{
                    "Namespace": "MjArchive", "Dimensions": [["Function"]],
                    "Metrics": [{"Name": "CallbacksReceived", "Unit": "Count"}]}]},
                "Function": "receiver",
                "CallbacksReceived": 1.0
            })
        );
    }
}
