//! A hello-world lambda_http function: every request gets 200 with the body
//! `hello`. The benchmark (`scripts/bench`) uses it as the cold-start and
//! size baseline, built with the same release profile as `receiver`:
//! `cargo build --release --example hello_lambda`.

use lambda_http::{service_fn, Body, Error, Request, Response};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from("hello"))?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(hello)).await
}
