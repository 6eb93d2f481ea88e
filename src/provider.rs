//! Client of the provider's task-details API (Kie AI
//! `GET /api/v1/mj/record-info?taskId=...`, "Get Midjourney Task Details").
//!
//! Used by `mj-archive fetch` to archive a task whose callback was missed,
//! and by the archiver to confirm a callback's result URLs.

use std::time::Duration;

use serde::Deserialize;

use crate::callback::{Callback, SUCCESS_CODE};
use crate::config::ProviderConfig;
use crate::task_id::TaskId;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("request to the provider's API for task {task_id} failed")]
    Request {
        task_id: TaskId,
        #[source]
        source: reqwest::Error,
    },
    #[error("the provider's API rejected PROVIDER_API_KEY (HTTP {status}); check the key")]
    Unauthorized { status: u16 },
    #[error("the provider's API answered HTTP {status} for task {task_id}")]
    Status { task_id: TaskId, status: u16 },
    #[error("the provider's API answered code {code} for task {task_id}: {msg}")]
    Api {
        task_id: TaskId,
        code: i64,
        msg: String,
    },
    #[error("the provider's answer for task {task_id} is not the expected JSON")]
    InvalidBody {
        task_id: TaskId,
        #[source]
        source: serde_json::Error,
    },
    #[error("the provider's answer is for task {found}, not {task_id}")]
    WrongTask { task_id: TaskId, found: String },
}

/// The generation state, from `successFlag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// `successFlag` 0: still generating.
    Generating,
    /// `successFlag` 1.
    Success,
    /// `successFlag` 2 or 3 (or any other value).
    Failed { flag: i64 },
}

/// The provider's report on one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDetails {
    pub task_id: TaskId,
    pub state: TaskState,
    pub result_urls: Vec<String>,
    /// The task's parameters, a JSON document encoded as a string.
    pub param_json: Option<String>,
    pub error_message: Option<String>,
}

impl TaskDetails {
    /// The callback the provider would have sent for this task.
    pub fn to_callback(&self) -> Callback {
        let (code, msg) = match self.state {
            TaskState::Success => (SUCCESS_CODE, Some("success".to_owned())),
            TaskState::Generating => (0, Some("still generating".to_owned())),
            TaskState::Failed { .. } => (500, self.error_message.clone()),
        };
        Callback {
            code,
            msg,
            task_id: self.task_id.clone(),
            prompt_json: self.param_json.clone(),
            result_urls: self.result_urls.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Option<RecordInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordInfo {
    task_id: String,
    #[serde(default)]
    success_flag: Option<i64>,
    #[serde(default)]
    param_json: Option<String>,
    #[serde(default)]
    result_info_json: Option<ResultInfo>,
    #[serde(default)]
    error_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultInfo {
    #[serde(default)]
    result_urls: Option<Vec<ResultUrl>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultUrl {
    result_url: String,
}

/// A client for one API key and base URL.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    client: reqwest::Client,
    config: ProviderConfig,
}

impl ProviderClient {
    pub fn new(config: ProviderConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("mj-archive/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self { client, config })
    }

    /// Asks the provider for a task's state and result URLs.
    pub async fn task_details(&self, task_id: &TaskId) -> Result<TaskDetails, ProviderError> {
        let mut url = self.config.base_url.clone();
        url.set_path("/api/v1/mj/record-info");
        url.query_pairs_mut()
            .clear()
            .append_pair("taskId", task_id.as_str());

        let request_error = |source| ProviderError::Request {
            task_id: task_id.clone(),
            source,
        };
        let response = self
            .client
            .get(url)
            .bearer_auth(self.config.api_key.expose())
            .send()
            .await
            .map_err(request_error)?;

        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(ProviderError::Unauthorized { status });
        }
        if !response.status().is_success() {
            return Err(ProviderError::Status {
                task_id: task_id.clone(),
                status,
            });
        }
        let body = response.bytes().await.map_err(request_error)?;
        parse_record_info(task_id, &body)
    }
}

/// Parses a record-info response for `task_id`.
pub fn parse_record_info(task_id: &TaskId, body: &[u8]) -> Result<TaskDetails, ProviderError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|source| ProviderError::InvalidBody {
            task_id: task_id.clone(),
            source,
        })?;
    if envelope.code == 401 {
        return Err(ProviderError::Unauthorized { status: 401 });
    }
    let data = match envelope.data {
        Some(data) if envelope.code == SUCCESS_CODE => data,
        _ => {
            return Err(ProviderError::Api {
                task_id: task_id.clone(),
                code: envelope.code,
                msg: envelope.msg.unwrap_or_default(),
            })
        }
    };
    if data.task_id != task_id.as_str() {
        return Err(ProviderError::WrongTask {
            task_id: task_id.clone(),
            found: data.task_id,
        });
    }

    let state = match data.success_flag {
        Some(0) | None => TaskState::Generating,
        Some(1) => TaskState::Success,
        Some(flag) => TaskState::Failed { flag },
    };
    let result_urls = data
        .result_info_json
        .and_then(|info| info.result_urls)
        .unwrap_or_default()
        .into_iter()
        .map(|entry| entry.result_url)
        .collect();

    Ok(TaskDetails {
        task_id: task_id.clone(),
        state,
        result_urls,
        param_json: data.param_json,
        error_message: data.error_message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskId {
        TaskId::parse("mj_task_1").unwrap()
    }

    #[test]
    fn success_answer() {
        let body = br#"{"code":200,"msg":"success","data":{"taskId":"mj_task_1","successFlag":1,
            "paramJson":"{\"prompt\":\"p\"}","resultInfoJson":{"resultUrls":[{"resultUrl":"https://h/a.png"},{"resultUrl":"https://h/b.png"}]}}}"#;
        let details = parse_record_info(&task(), body).unwrap();

        assert_eq!(details.state, TaskState::Success);
        assert_eq!(
            details.result_urls,
            vec!["https://h/a.png", "https://h/b.png"]
        );
        assert_eq!(details.to_callback().code, 200);
        assert_eq!(
            details.to_callback().prompt(),
            Some(serde_json::json!({"prompt": "p"}))
        );
    }

    #[test]
    fn states_and_errors() {
        let generating =
            br#"{"code":200,"data":{"taskId":"mj_task_1","successFlag":0,"resultInfoJson":null}}"#;
        assert_eq!(
            parse_record_info(&task(), generating).unwrap().state,
            TaskState::Generating
        );

        let failed =
            br#"{"code":200,"data":{"taskId":"mj_task_1","successFlag":3,"errorMessage":"nsfw"}}"#;
        let details = parse_record_info(&task(), failed).unwrap();
        assert_eq!(details.state, TaskState::Failed { flag: 3 });
        assert_eq!(details.to_callback().code, 500);

        let api_error = br#"{"code":422,"msg":"task not found","data":null}"#;
        assert!(matches!(
            parse_record_info(&task(), api_error),
            Err(ProviderError::Api { code: 422, .. })
        ));
        let other = br#"{"code":200,"data":{"taskId":"mj_task_2","successFlag":1}}"#;
        assert!(matches!(
            parse_record_info(&task(), other),
            Err(ProviderError::WrongTask { .. })
        ));
        assert!(matches!(
            parse_record_info(&task(), b"<html>"),
            Err(ProviderError::InvalidBody { .. })
        ));
    }
}
