//! Lambda bootstrap of the archiver (S3 ObjectCreated notifications for `callback.json`).

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use mj_archive::archive::Archiver;
use mj_archive::archiver_event::{deadline_instant, handle_event};
use mj_archive::config::{s3_client_from_env, ArchiverConfig, Env};
use mj_archive::init_error::exit_on_config_error;
use mj_archive::metrics::Metrics;
use mj_archive::provider::ProviderClient;
use mj_archive::report::error_chain;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let config = exit_on_config_error(ArchiverConfig::from_env(&Env::process())).await;
    let client = exit_on_config_error(s3_client_from_env(None).await).await;
    let provider = config
        .provider
        .clone()
        .map(ProviderClient::new)
        .transpose()?;
    let archiver = Arc::new(Archiver::from_config(
        &config,
        client,
        provider,
        Metrics::from_lambda_env(),
    )?);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let archiver = archiver.clone();
        async move {
            let deadline = deadline_instant(event.context.deadline());
            handle_event(&archiver, event.payload, deadline)
                .await
                .map_err(|err| Diagnostic {
                    error_type: err.error_type().to_owned(),
                    error_message: error_chain(&err),
                })
        }
    }))
    .await
}
