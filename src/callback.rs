//! The provider's callback body and its parser.
//!
//! Shape (Kie AI "Generate MJ image callbacks"):
//! `{"code": 200, "msg": "success", "data": {"taskId": "...", "promptJson": "...", "resultUrls": [...]}}`.
//! Unknown fields are ignored, and `task_id` is accepted as an alias of `taskId`.

use serde::Deserialize;

use crate::task_id::{TaskId, TaskIdError};

/// The provider's `code` for a successful generation.
pub const SUCCESS_CODE: i64 = 200;

/// Limits applied while parsing a callback body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackLimits {
    /// Maximum number of entries in `resultUrls`.
    pub max_result_urls: usize,
    /// Maximum length of one result URL, in bytes.
    pub max_url_length: usize,
}

impl Default for CallbackLimits {
    fn default() -> Self {
        Self {
            max_result_urls: 64,
            max_url_length: 1024,
        }
    }
}

/// A parsed and validated callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub code: i64,
    pub msg: Option<String>,
    pub task_id: TaskId,
    /// The provider's prompt, a JSON document encoded as a string, kept as sent.
    pub prompt_json: Option<String>,
    /// Result URLs as sent; each is checked only when it is fetched, so one bad
    /// URL does not reject the whole callback.
    pub result_urls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("callback body is not a valid provider callback: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("callback has an invalid taskId")]
    InvalidTaskId(#[source] TaskIdError),
    #[error("callback for task {task_id} has {count} resultUrls, the maximum is {max}")]
    TooManyResultUrls {
        task_id: TaskId,
        count: usize,
        max: usize,
    },
    #[error(
        "callback for task {task_id} has resultUrls[{index}] of {len} bytes, the maximum is {max}"
    )]
    UrlTooLong {
        task_id: TaskId,
        index: usize,
        len: usize,
        max: usize,
    },
}

#[derive(Deserialize)]
struct RawCallback {
    code: i64,
    #[serde(default)]
    msg: Option<String>,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    #[serde(rename = "taskId", alias = "task_id")]
    task_id: String,
    #[serde(rename = "promptJson", default)]
    prompt_json: Option<String>,
    #[serde(rename = "resultUrls", default)]
    result_urls: Option<Vec<String>>,
}

impl Callback {
    /// Parses a callback body and validates its task id and limits.
    ///
    /// `serde_json` stops at 128 levels of nesting, so deeply nested input is
    /// an error, not a stack overflow.
    pub fn parse(body: &[u8], limits: CallbackLimits) -> Result<Self, CallbackError> {
        let raw: RawCallback = serde_json::from_slice(body).map_err(CallbackError::InvalidJson)?;
        let task_id = TaskId::parse(&raw.data.task_id).map_err(CallbackError::InvalidTaskId)?;
        let result_urls = raw.data.result_urls.unwrap_or_default();

        if result_urls.len() > limits.max_result_urls {
            return Err(CallbackError::TooManyResultUrls {
                task_id,
                count: result_urls.len(),
                max: limits.max_result_urls,
            });
        }

        let long_url = result_urls
            .iter()
            .enumerate()
            .find(|(_, url)| url.len() > limits.max_url_length);
        if let Some((index, url)) = long_url {
            return Err(CallbackError::UrlTooLong {
                task_id,
                index,
                len: url.len(),
                max: limits.max_url_length,
            });
        }

        Ok(Self {
            code: raw.code,
            msg: raw.msg,
            task_id,
            prompt_json: raw.data.prompt_json,
            result_urls,
        })
    }

    pub fn is_success(&self) -> bool {
        self.code == SUCCESS_CODE
    }

    /// Parses `promptJson` into a JSON value; a string that is not valid JSON
    /// is returned as a JSON string so the prompt is never lost.
    pub fn prompt(&self) -> Option<serde_json::Value> {
        let raw = self.prompt_json.as_deref()?;
        Some(
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_owned())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &str = r#"{"code":200,"msg":"success","data":{"taskId":"mj_task_12345",
        "promptJson":"{\"prompt\":\"a beautiful landscape\",\"model\":\"midjourney\"}",
        "resultUrls":["https://cdn.example.com/x_0_0.jpeg","https://cdn.example.com/x_0_1.jpeg"]},
        "extra":{"ignored":true}}"#;

    #[test]
    fn parses_success_body() {
        let callback = Callback::parse(SUCCESS.as_bytes(), CallbackLimits::default()).unwrap();

        assert_eq!(callback.code, 200);
        assert_eq!(callback.msg.as_deref(), Some("success"));
        assert_eq!(callback.task_id.as_str(), "mj_task_12345");
        assert_eq!(callback.result_urls.len(), 2);
        assert!(callback.is_success());
        assert_eq!(
            callback.prompt(),
            Some(serde_json::json!({"prompt": "a beautiful landscape", "model": "midjourney"}))
        );
    }

    #[test]
    fn failure_body_without_urls_parses() {
        for urls in [r#","resultUrls":null"#, r#","resultUrls":[]"#, ""] {
            let body = format!(r#"{{"code":500,"msg":"failed","data":{{"task_id":"t1"{urls}}}}}"#);
            let callback = Callback::parse(body.as_bytes(), CallbackLimits::default()).unwrap();

            assert_eq!(callback.code, 500);
            assert!(!callback.is_success());
            assert!(callback.result_urls.is_empty());
            assert_eq!(callback.prompt(), None);
        }
    }

    #[test]
    fn invalid_prompt_json_kept_as_string() {
        let body = r#"{"code":200,"data":{"taskId":"t","promptJson":"not json {"}}"#;
        let callback = Callback::parse(body.as_bytes(), CallbackLimits::default()).unwrap();

        assert_eq!(callback.prompt(), Some(serde_json::json!("not json {")));
    }

    #[test]
    fn limits_reject_with_exact_variant() {
        let limits = CallbackLimits {
            max_result_urls: 1,
            max_url_length: 30,
        };

        let err = Callback::parse(SUCCESS.as_bytes(), limits).unwrap_err();
        assert!(matches!(
            err,
            CallbackError::TooManyResultUrls {
                count: 2,
                max: 1,
                ..
            }
        ));

        let body = r#"{"code":200,"data":{"taskId":"t","resultUrls":["https://cdn.example.com/a/very/long/path.png"]}}"#;
        let err = Callback::parse(body.as_bytes(), limits).unwrap_err();
        assert!(matches!(
            err,
            CallbackError::UrlTooLong {
                index: 0,
                len: 44,
                max: 30,
                ..
            }
        ));
    }

    #[test]
    fn wrong_types_and_missing_fields_are_invalid_json() {
        for body in [
            "",
            "null",
            "[]",
            r#"{"code":"200","data":{"taskId":"t"}}"#,
            r#"{"code":200}"#,
            r#"{"code":200,"data":{"taskId":5}}"#,
            r#"{"code":200,"data":{"taskId":"t","resultUrls":"https://x"}}"#,
            r#"{"code":200,"data":{"taskId":"t","resultUrls":[1]}}"#,
            r#"{"code":200,"data":{"taskId":"t","taskId":"u"}}"#,
        ] {
            let err = Callback::parse(body.as_bytes(), CallbackLimits::default()).unwrap_err();
            assert!(
                matches!(err, CallbackError::InvalidJson(_)),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));

        let err = Callback::parse(deep.as_bytes(), CallbackLimits::default()).unwrap_err();
        assert!(matches!(err, CallbackError::InvalidJson(_)));

        let in_task_id = format!(r#"{{"code":200,"data":{{"taskId":{deep}}}}}"#);
        let err = Callback::parse(in_task_id.as_bytes(), CallbackLimits::default()).unwrap_err();
        assert!(matches!(err, CallbackError::InvalidJson(_)));
    }

    #[test]
    fn deep_nesting_in_unknown_field_is_ignored() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(r#"{{"code":200,"data":{{"taskId":"t","x":{deep}}}}}"#);

        let callback = Callback::parse(body.as_bytes(), CallbackLimits::default()).unwrap();
        assert_eq!(callback.task_id.as_str(), "t");
    }
}
