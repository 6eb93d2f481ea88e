//! Lambda bootstrap of the receiver (API Gateway HTTP or REST API, or a function URL).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use lambda_http::{service_fn, Request};
use mj_archive::config::{s3_client_from_env, Env, ReceiverConfig};
use mj_archive::init_error::exit_on_config_error;
use mj_archive::metrics::Metrics;
use mj_archive::receive::Receiver;
use mj_archive::store::Store;

/// The provider waits 15 s for a response. S3 gets well under that, so a slow
/// S3 ends in a 5xx the provider retries, not in the provider's timeout.
fn s3_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();

    let config = exit_on_config_error(ReceiverConfig::from_env(&Env::process())).await;
    let client = exit_on_config_error(s3_client_from_env(Some(s3_timeouts())).await).await;
    let store = Store::new(client, config.storage.bucket.clone());
    let receiver = Arc::new(Receiver::new(store, config, Metrics::from_lambda_env()));

    lambda_http::run(service_fn(move |request: Request| {
        let receiver = receiver.clone();
        async move { Ok::<_, Infallible>(receiver.handle(request).await) }
    }))
    .await
}
