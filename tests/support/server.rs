//! An HTTP/1.1 server on `127.0.0.1:0` that runs on a dedicated thread.
//!
//! The thread owns a tokio runtime, so the server keeps serving while the
//! test's own runtime is blocked or busy.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Maximum time that `Drop` waits for blocking tasks (such as `tokio::fs`
/// calls in s3s-fs) after the server stops accepting connections.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Handle to a running server. Dropping it closes the listener and every open
/// connection, then joins the thread.
pub struct ServerThread {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `127.0.0.1:0` and serves every connection with `handler`.
    ///
    /// When `handler` returns an error, hyper closes the connection without
    /// sending a response, which is how the servers here simulate a dropped
    /// connection.
    pub fn spawn<H, F, B>(name: &str, handler: H) -> ServerThread
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<B>, BoxError>> + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("failed to bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("failed to make the listener non-blocking");
        let address = listener
            .local_addr()
            .expect("failed to read the listener address");

        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-server"))
            .spawn(move || run_server(listener, handler, shutdown_rx))
            .expect("failed to spawn the server thread");

        ServerThread {
            address,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_server<H, F, B>(
    listener: std::net::TcpListener,
    handler: H,
    mut shutdown: oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, BoxError>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("failed to build the server runtime");

    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("failed to register the listener");
        // Dropping the set at the end of this block aborts every connection task.
        let mut connections = JoinSet::new();

        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _peer)) => stream,
                        Err(err) => {
                            eprintln!("test server: accept failed: {err}");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let service = service_fn(handler);
                        // Errors here are connection-level (client went away, injected
                        // faults) and are expected in tests.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });

    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
}
