//! Start-up failures of the Lambda functions, reported to the Runtime API.
//!
//! lambda_runtime starts talking to the Runtime API only in `run`, after
//! configuration is read. A function that cannot start posts the error to
//! `/runtime/init/error` itself, so the error shows in the invocation's
//! result as well as in the logs.

use std::time::Duration;

use crate::config::ConfigError;

/// Logs `err`, reports it to the Runtime API when there is one, and exits with status 2.
pub async fn exit_on_config_error<T>(result: Result<T, ConfigError>) -> T {
    let err = match result {
        Ok(value) => return value,
        Err(err) => err,
    };
    tracing::error!(variable = err.variable, error = %err, "invalid configuration");
    eprintln!("mj-archive: {err}");

    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        if let Err(report_err) = post_init_error(&api, &err).await {
            tracing::warn!(error = %report_err, "could not report the start-up error to the Runtime API");
        }
    }
    std::process::exit(2)
}

async fn post_init_error(api: &str, err: &ConfigError) -> Result<(), reqwest::Error> {
    let body = serde_json::json!({
        "errorType": "Runtime.ConfigError",
        "errorMessage": err.to_string(),
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()?
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
