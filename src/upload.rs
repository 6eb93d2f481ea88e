//! Streaming upload of one result into S3.
//!
//! Memory bound: bodies are held only in part buffers, and every buffer holds
//! a permit of one semaphore shared by all uploads, so body memory stays under
//! `part_size * max_buffered_parts` whatever the file sizes. A buffer is
//! released when its part is uploaded, so reading waits for S3 (back-pressure)
//! rather than buffering more.
//!
//! S3 limits relied on: parts of at least 5 MiB except the last, at most 10,000
//! parts, and at most 5 GiB in one PutObject or one part.
//!
//! A result whose length is known and at most one part goes in one PutObject.
//! An unknown or larger length goes as a multipart upload, which is aborted on
//! any failure, so no object with partial bytes ever becomes visible.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use aws_sdk_s3::types::CompletedPart;

use crate::store::{ObjectAttributes, Store, StoreError};

/// S3's maximum number of parts in one multipart upload.
pub const S3_MAX_PARTS: i32 = 10_000;

/// Parts between two progress lines at INFO (64 MiB with the default 8 MiB parts).
const PROGRESS_EVERY_PARTS: i32 = 8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Upload failure. A multipart upload has been aborted when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("reading the source body failed after {received} bytes")]
    Body {
        received: u64,
        #[source]
        source: BoxError,
    },
    #[error("source body exceeds MAX_RESULT_BYTES ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("source body is empty")]
    Empty,
    #[error("source declared {declared} bytes but sent {received}")]
    LengthMismatch { declared: u64, received: u64 },
    #[error(
        "result needs more than {S3_MAX_PARTS} parts of {part_size} bytes; raise PART_SIZE_BYTES"
    )]
    TooManyParts { part_size: usize },
    #[error("deadline reached after {received} bytes")]
    Deadline { received: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("part upload task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Size and digest of a stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// 0 for a single PutObject, else the number of multipart parts.
    pub parts: u32,
}

/// Uploads streams into one bucket under a shared memory bound.
#[derive(Debug, Clone)]
pub struct Uploader {
    store: Store,
    part_size: usize,
    buffers: Arc<Semaphore>,
    max_bytes: u64,
}

/// Byte counting, size limit and digest over everything read.
struct Tally {
    hasher: Sha256,
    received: u64,
    max_bytes: u64,
}

impl Tally {
    fn add(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.received += chunk.len() as u64;
        if self.received > self.max_bytes {
            return Err(UploadError::TooLarge {
                limit: self.max_bytes,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }
}

/// Reads the next chunk, stopping at the deadline.
async fn next_chunk<S, E>(
    body: &mut S,
    deadline: Instant,
    received: u64,
) -> Result<Option<Bytes>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    match tokio::time::timeout_at(deadline, body.next()).await {
        Err(_) => Err(UploadError::Deadline { received }),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(err))) => Err(UploadError::Body {
            received,
            source: err.into(),
        }),
    }
}

/// Part uploads of one multipart upload; aborts the running ones when dropped early.
struct PartTasks {
    running: Vec<JoinHandle<Result<CompletedPart, StoreError>>>,
    done: Vec<CompletedPart>,
}

impl PartTasks {
    /// Moves finished uploads to `done`, returning the first error among them.
    async fn collect_finished(&mut self) -> Result<(), UploadError> {
        let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|h| h.is_finished());
        self.running = running;
        for handle in finished {
            self.done.push(handle.await.map_err(UploadError::Task)??);
        }
        Ok(())
    }

    /// Waits for every part and returns them in part-number order.
    async fn finish(
        &mut self,
        deadline: Instant,
        received: u64,
    ) -> Result<Vec<CompletedPart>, UploadError> {
        for handle in std::mem::take(&mut self.running) {
            let joined = tokio::time::timeout_at(deadline, handle)
                .await
                .map_err(|_| UploadError::Deadline { received })?;
            self.done.push(joined.map_err(UploadError::Task)??);
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|part| part.part_number());
        Ok(parts)
    }
}

impl Drop for PartTasks {
    fn drop(&mut self) {
        for handle in &self.running {
            handle.abort();
        }
    }
}

impl Uploader {
    pub fn new(store: Store, part_size: usize, max_buffered_parts: usize, max_bytes: u64) -> Self {
        Self {
            store,
            part_size,
            buffers: Arc::new(Semaphore::new(max_buffered_parts)),
            max_bytes,
        }
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// Streams `initial` followed by `body` into `key`.
    ///
    /// `declared_len` is the source's Content-Length, if any. Every wait
    /// stops at `deadline` with [`UploadError::Deadline`], after aborting a
    /// multipart upload.
    pub async fn upload<S, E>(
        &self,
        key: &str,
        attributes: &ObjectAttributes,
        declared_len: Option<u64>,
        initial: Bytes,
        mut body: S,
        deadline: Instant,
    ) -> Result<Uploaded, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        if let Some(declared) = declared_len {
            if declared > self.max_bytes {
                return Err(UploadError::TooLarge {
                    limit: self.max_bytes,
                });
            }
        }

        // `initial` is counted here; the paths below count only what they read.
        let mut tally = Tally {
            hasher: Sha256::new(),
            received: 0,
            max_bytes: self.max_bytes,
        };
        tally.add(&initial)?;
        match declared_len {
            Some(len) if len <= self.part_size as u64 => {
                self.put_single(
                    key, attributes, len, initial, &mut body, &mut tally, deadline,
                )
                .await
            }
            _ => {
                self.put_multipart(
                    key,
                    attributes,
                    declared_len,
                    initial,
                    &mut body,
                    &mut tally,
                    deadline,
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_single<S, E>(
        &self,
        key: &str,
        attributes: &ObjectAttributes,
        declared: u64,
        initial: Bytes,
        body: &mut S,
        tally: &mut Tally,
        deadline: Instant,
    ) -> Result<Uploaded, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let _permit = self.acquire_buffer(deadline, tally.received).await?;
        let mut buffer = BytesMut::with_capacity(declared as usize);
        let mut next = Some(initial);
        loop {
            let chunk = match next.take() {
                Some(chunk) => chunk,
                None => match next_chunk(body, deadline, tally.received).await? {
                    Some(chunk) => {
                        tally.add(&chunk)?;
                        chunk
                    }
                    None => break,
                },
            };
            if tally.received > declared {
                return Err(UploadError::LengthMismatch {
                    declared,
                    received: tally.received,
                });
            }
            buffer.extend_from_slice(&chunk);
        }

        if tally.received != declared {
            return Err(UploadError::LengthMismatch {
                declared,
                received: tally.received,
            });
        }
        if tally.received == 0 {
            return Err(UploadError::Empty);
        }

        let sha256 = hex::encode(tally.hasher.clone().finalize());
        self.store.put(key, buffer.freeze(), attributes).await?;
        Ok(Uploaded {
            bytes: tally.received,
            sha256,
            parts: 0,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_multipart<S, E>(
        &self,
        key: &str,
        attributes: &ObjectAttributes,
        declared: Option<u64>,
        initial: Bytes,
        body: &mut S,
        tally: &mut Tally,
        deadline: Instant,
    ) -> Result<Uploaded, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let upload_id = self.store.create_multipart_upload(key, attributes).await?;
        let mut tasks = PartTasks {
            running: Vec::new(),
            done: Vec::new(),
        };

        let result = self
            .send_parts(
                key, &upload_id, declared, initial, body, tally, deadline, &mut tasks,
            )
            .await;
        let parts = match result {
            Ok(parts) => parts,
            Err(err) => {
                drop(tasks);
                self.abort(key, &upload_id).await;
                return Err(err);
            }
        };

        let part_count = parts.len() as u32;
        if let Err(err) = self
            .store
            .complete_multipart_upload(key, &upload_id, parts)
            .await
        {
            self.abort(key, &upload_id).await;
            return Err(err.into());
        }
        Ok(Uploaded {
            bytes: tally.received,
            sha256: hex::encode(tally.hasher.clone().finalize()),
            parts: part_count,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts<S, E>(
        &self,
        key: &str,
        upload_id: &str,
        declared: Option<u64>,
        initial: Bytes,
        body: &mut S,
        tally: &mut Tally,
        deadline: Instant,
        tasks: &mut PartTasks,
    ) -> Result<Vec<CompletedPart>, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let mut carry = Some(initial).filter(|b| !b.is_empty());
        let mut finished = false;
        let mut part_number: i32 = 0;

        while !finished {
            let permit = self.acquire_buffer(deadline, tally.received).await?;
            let mut buffer = BytesMut::with_capacity(self.part_size);

            while buffer.len() < self.part_size {
                let mut chunk = match carry.take() {
                    Some(chunk) => chunk,
                    None => match next_chunk(body, deadline, tally.received).await? {
                        Some(chunk) => {
                            tally.add(&chunk)?;
                            chunk
                        }
                        None => {
                            finished = true;
                            break;
                        }
                    },
                };
                let room = self.part_size - buffer.len();
                if chunk.len() > room {
                    carry = Some(chunk.split_off(room));
                }
                buffer.extend_from_slice(&chunk);
            }

            if buffer.is_empty() {
                break;
            }
            part_number += 1;
            if part_number > S3_MAX_PARTS {
                return Err(UploadError::TooManyParts {
                    part_size: self.part_size,
                });
            }
            // Progress for long transfers: one line per PROGRESS_EVERY_PARTS parts.
            if part_number % PROGRESS_EVERY_PARTS == 0 {
                tracing::info!(key, part_number, bytes = tally.received, "upload progress");
            } else {
                tracing::debug!(key, part_number, bytes = tally.received, "uploading part");
            }
            self.spawn_part(key, upload_id, part_number, buffer.freeze(), permit, tasks);
            tasks.collect_finished().await?;
        }

        if let Some(declared) = declared {
            if tally.received != declared {
                return Err(UploadError::LengthMismatch {
                    declared,
                    received: tally.received,
                });
            }
        }
        if tally.received == 0 {
            return Err(UploadError::Empty);
        }

        tasks.finish(deadline, tally.received).await
    }

    fn spawn_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
        permit: OwnedSemaphorePermit,
        tasks: &mut PartTasks,
    ) {
        let store = self.store.clone();
        let key = key.to_owned();
        let upload_id = upload_id.to_owned();
        tasks.running.push(tokio::spawn(async move {
            let result = store.upload_part(&key, &upload_id, part_number, body).await;
            drop(permit);
            result
        }));
    }

    async fn acquire_buffer(
        &self,
        deadline: Instant,
        received: u64,
    ) -> Result<OwnedSemaphorePermit, UploadError> {
        match tokio::time::timeout_at(deadline, self.buffers.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => Err(UploadError::Deadline { received }),
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        match self.store.abort_multipart_upload(key, upload_id).await {
            Ok(()) => tracing::info!(key, upload_id, "aborted multipart upload"),
            Err(err) => tracing::warn!(
                key,
                upload_id,
                error = %crate::report::error_chain(&err),
                "failed to abort multipart upload; the bucket's lifecycle rule removes it"
            ),
        }
    }
}
