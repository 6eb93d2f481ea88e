//! Shared harness for the integration tests: an in-process S3-compatible
//! server, an HTTP origin that serves the sample images, an emulator of the
//! AWS Lambda Runtime API and a guard for child processes.
//!
//! Every server binds `127.0.0.1:0` and runs on its own thread with its own
//! tokio runtime. A test may therefore block its own thread (for example on
//! `std::process::Child::wait`) without stalling the servers, and it can use
//! any `#[tokio::test]` flavor. Each server stops when its handle is dropped.
//!
//! Integration test binaries compile this module separately and each uses
//! only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod origin;
pub mod process;
pub mod runtime_api;
pub mod s3;
mod server;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Returns the directory that contains the sample files (`tests/data`).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// Reads a sample file from `tests/data`, panicking with the path if it is missing.
pub fn data(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("failed to read {}: {err}", path.display()))
}

/// Returns the lowercase hex SHA-256 digest of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns `len` random bytes from `/dev/urandom` as lowercase hex.
pub(crate) fn random_hex(len: usize) -> String {
    use std::io::Read;

    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .expect("failed to read /dev/urandom");
    hex::encode(bytes)
}
