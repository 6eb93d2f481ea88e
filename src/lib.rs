//! mj-archive: receive Midjourney API callbacks and archive every result into S3.
//!
//! The `receiver` function stores each callback as `{prefix}{taskId}/callback.json`
//! ([`receive`]); the `archiver` function, triggered by that object, streams
//! every result into `{prefix}{taskId}/{index}.{ext}` and writes a manifest
//! ([`archive`]). The `mj-archive` command recovers and browses tasks.

pub mod archive;
pub mod archiver_event;
pub mod callback;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod init_error;
pub mod keys;
pub mod manifest;
pub mod media_type;
pub mod metrics;
pub mod provider;
pub mod receive;
pub mod report;
pub mod s3_event;
pub mod secret;
pub mod signature;
pub mod source_guard;
pub mod store;
pub mod task_id;
pub mod upload;
