//! The archive of one task: read the stored callback, stream every result
//! into S3, and write the manifest.
//!
//! Idempotent: a settled manifest ends a re-delivered event at once, and a
//! result the manifest already records (and S3 still has) is not fetched
//! again. Permanent source failures are recorded; transient ones are retried
//! with backoff and, if they persist, leave the manifest `incomplete` and fail
//! the invocation so that Lambda retries it.

use std::collections::HashSet;

use backon::BackoffBuilder as _;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::time::Instant;

use crate::callback::{Callback, CallbackError, CallbackLimits};
use crate::config::{ArchiverConfig, TransferConfig};
use crate::fetch::{FetchError, Fetcher};
use crate::keys::KeyLayout;
use crate::manifest::{
    now_rfc3339, ArchiveStatus, FailureKind, Manifest, ResultEntry, ResultFailure,
};
use crate::media_type::{self, Declared, SNIFF_LEN};
use crate::metrics::Metrics;
use crate::provider::ProviderClient;
use crate::report::error_chain;
use crate::source_guard::{SourceError, SourcePolicy};
use crate::store::{ObjectAttributes, Store, StoreError};
use crate::task_id::TaskId;
use crate::upload::{UploadError, Uploader};

/// Origin of a task's callback, as recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSource {
    /// The stored `callback.json`.
    Callback,
    /// The provider's task-details API (`mj-archive fetch`).
    ProviderApi,
}

impl TaskSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Callback => "callback",
            Self::ProviderApi => "provider_api",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no stored callback at s3://{bucket}/{key}; the receiver stores it first")]
    CallbackMissing { bucket: String, key: String },
    #[error("stored callback s3://{bucket}/{key} is not a valid callback")]
    InvalidStoredCallback {
        bucket: String,
        key: String,
        #[source]
        source: CallbackError,
    },
    #[error("stored callback {key} names task {found}, but its key names another task")]
    TaskIdMismatch { key: String, found: TaskId },
    #[error("S3 failed while archiving task {task_id}")]
    Store {
        task_id: TaskId,
        #[source]
        source: StoreError,
    },
    #[error("could not confirm the result URLs of task {task_id} with the provider's API")]
    Provider {
        task_id: TaskId,
        #[source]
        source: crate::provider::ProviderError,
    },
    #[error(
        "task {task_id}: {pending} of {total} results are not archived yet (transient failures or \
         the deadline); the manifest says which, and a retry continues where this run stopped"
    )]
    Incomplete {
        task_id: TaskId,
        pending: usize,
        total: usize,
    },
}

/// Archives tasks into one bucket.
pub struct Archiver {
    store: Store,
    layout: KeyLayout,
    limits: CallbackLimits,
    transfer: TransferConfig,
    fetcher: Fetcher,
    uploader: Uploader,
    provider: Option<ProviderClient>,
    metrics: Metrics,
}

/// Options for one run over a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub source: TaskSource,
    /// Re-check a task whose manifest is settled; archived results are still reused.
    pub force: bool,
}

impl Archiver {
    pub fn new(
        store: Store,
        layout: KeyLayout,
        limits: CallbackLimits,
        transfer: TransferConfig,
        sources: SourcePolicy,
        provider: Option<ProviderClient>,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        let fetcher = Fetcher::new(sources, &transfer)?;
        let uploader = Uploader::new(
            store.clone(),
            transfer.part_size,
            transfer.max_buffered_parts,
            transfer.max_result_bytes,
        );
        Ok(Self {
            store,
            layout,
            limits,
            transfer,
            fetcher,
            uploader,
            provider,
            metrics,
        })
    }

    /// Builds an archiver from the loaded configuration. `provider` is the
    /// client for the URL cross-check, or `None` to skip it.
    pub fn from_config(
        config: &ArchiverConfig,
        client: aws_sdk_s3::Client,
        provider: Option<ProviderClient>,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        Self::new(
            Store::new(client, config.storage.bucket.clone()),
            config.storage.layout.clone(),
            config.limits,
            config.transfer,
            config.sources.clone(),
            provider,
            metrics,
        )
    }

    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads the stored callback of `task_id` and archives it.
    pub async fn archive_stored(
        &self,
        task_id: &TaskId,
        deadline: Instant,
        force: bool,
    ) -> Result<Manifest, ArchiveError> {
        let key = self.layout.callback_key(task_id);
        let body = self
            .store
            .get(&key)
            .await
            .map_err(|source| ArchiveError::Store {
                task_id: task_id.clone(),
                source,
            })?
            .ok_or_else(|| ArchiveError::CallbackMissing {
                bucket: self.store.bucket().to_owned(),
                key: key.clone(),
            })?;

        let callback = Callback::parse(&body, self.limits).map_err(|source| {
            ArchiveError::InvalidStoredCallback {
                bucket: self.store.bucket().to_owned(),
                key: key.clone(),
                source,
            }
        })?;
        if &callback.task_id != task_id {
            return Err(ArchiveError::TaskIdMismatch {
                key,
                found: callback.task_id,
            });
        }

        let options = RunOptions {
            source: TaskSource::Callback,
            force,
        };
        self.archive_callback(&callback, deadline, options).await
    }

    /// Reads the manifest of a task, if there is one that parses.
    pub async fn read_manifest(&self, task_id: &TaskId) -> Result<Option<Manifest>, StoreError> {
        let key = self.layout.manifest_key(task_id);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(manifest) => Ok(Some(manifest)),
            Err(err) => {
                tracing::warn!(key, error = %err, "ignoring unreadable manifest");
                Ok(None)
            }
        }
    }

    /// Archives every result of a callback and writes the manifest.
    ///
    /// `deadline` is when the caller must be done; work stops
    /// `deadline_margin` before it so that the manifest can still be written.
    pub async fn archive_callback(
        &self,
        callback: &Callback,
        deadline: Instant,
        options: RunOptions,
    ) -> Result<Manifest, ArchiveError> {
        let task_id = &callback.task_id;
        let started = Instant::now();
        let store_error = |source| ArchiveError::Store {
            task_id: task_id.clone(),
            source,
        };

        let previous = self.read_manifest(task_id).await.map_err(store_error)?;
        if let Some(previous) = previous
            .as_ref()
            .filter(|m| m.status.is_settled() && !options.force)
        {
            tracing::info!(task_id = %task_id, status = previous.status.as_str(), "task already archived; nothing to do");
            return Ok(previous.clone());
        }

        let mut manifest = Manifest {
            task_id: task_id.to_string(),
            status: ArchiveStatus::InProgress,
            provider_code: callback.code,
            provider_msg: callback.msg.clone(),
            prompt: callback.prompt(),
            source: options.source.as_str().to_owned(),
            results: Vec::new(),
            updated_at: now_rfc3339(),
            archiver_version: env!("CARGO_PKG_VERSION").to_owned(),
        };

        if !callback.is_success() {
            manifest.status = ArchiveStatus::ProviderFailed;
            self.write_manifest(task_id, &manifest)
                .await
                .map_err(store_error)?;
            tracing::info!(task_id = %task_id, code = callback.code, "provider reported a failed task; manifest written");
            self.metrics.task_settled(&manifest, started.elapsed());
            return Ok(manifest);
        }

        let confirmed = self.confirmed_urls(callback).await?;
        let work_deadline = deadline
            .checked_sub(self.transfer.deadline_margin)
            .unwrap_or_else(Instant::now);
        let previous_results = previous.map(|m| m.results).unwrap_or_default();

        let mut slots: Vec<Option<ResultEntry>> = vec![None; callback.result_urls.len()];
        let results = futures::stream::iter(callback.result_urls.iter().enumerate())
            .map(|(index, url)| {
                let previous = previous_results
                    .iter()
                    .find(|r| r.index == index && r.source_url == *url);
                let confirmed = confirmed.as_ref().map(|set| set.contains(url.as_str()));
                async move {
                    let entry = self
                        .archive_result(task_id, index, url, previous, confirmed, work_deadline)
                        .await;
                    (index, entry)
                }
            })
            .buffer_unordered(self.transfer.result_concurrency);
        futures::pin_mut!(results);

        while let Some((index, entry)) = results.next().await {
            self.metrics.result_settled(&entry);
            slots[index] = Some(entry);
            if slots.len() > 1 && slots.iter().any(Option::is_none) {
                manifest.results = slots.iter().flatten().cloned().collect();
                manifest.updated_at = now_rfc3339();
                self.write_manifest(task_id, &manifest)
                    .await
                    .map_err(store_error)?;
            }
        }

        manifest.results = slots.into_iter().flatten().collect();
        manifest.status = Manifest::settle_status(&manifest.results);
        manifest.updated_at = now_rfc3339();
        self.write_manifest(task_id, &manifest)
            .await
            .map_err(store_error)?;
        self.metrics.task_settled(&manifest, started.elapsed());

        let pending = manifest
            .results
            .iter()
            .filter(|r| r.error.as_ref().is_some_and(|e| e.kind.is_retryable()))
            .count();
        tracing::info!(
            task_id = %task_id,
            status = manifest.status.as_str(),
            results = manifest.results.len(),
            pending,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "task archive finished"
        );
        if manifest.status == ArchiveStatus::Incomplete {
            return Err(ArchiveError::Incomplete {
                task_id: task_id.clone(),
                pending,
                total: manifest.results.len(),
            });
        }
        Ok(manifest)
    }

    /// Asks the provider's API which URLs belong to the task, when a provider
    /// API key is configured. The signature does not cover the body, so this
    /// is the only check that the URLs are the provider's.
    async fn confirmed_urls(
        &self,
        callback: &Callback,
    ) -> Result<Option<HashSet<String>>, ArchiveError> {
        let Some(provider) = &self.provider else {
            return Ok(None);
        };
        let details = provider
            .task_details(&callback.task_id)
            .await
            .map_err(|source| ArchiveError::Provider {
                task_id: callback.task_id.clone(),
                source,
            })?;
        Ok(Some(details.result_urls.into_iter().collect()))
    }

    async fn write_manifest(
        &self,
        task_id: &TaskId,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        let key = self.layout.manifest_key(task_id);
        // serde_json fails only on non-string map keys or a failing Serialize impl, and a Manifest has neither.
        let body = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
        let attributes = ObjectAttributes {
            content_type: "application/json".into(),
            ..ObjectAttributes::default()
        };
        self.store.put(&key, body.into(), &attributes).await
    }

    /// Archives one result, reusing an earlier run's object when S3 still has it.
    async fn archive_result(
        &self,
        task_id: &TaskId,
        index: usize,
        url: &str,
        previous: Option<&ResultEntry>,
        confirmed: Option<bool>,
        deadline: Instant,
    ) -> ResultEntry {
        if let Some(previous) = previous.filter(|p| p.is_archived()) {
            match self.still_stored(previous).await {
                Ok(true) => {
                    tracing::info!(task_id = %task_id, index, key = previous.key.as_deref(), "result already archived; not fetched again");
                    return previous.clone();
                }
                Ok(false) => {}
                Err(err) => {
                    return ResultEntry::failed(
                        index,
                        url,
                        FailureKind::Storage,
                        error_chain(&err),
                    );
                }
            }
        }

        if confirmed == Some(false) {
            let message =
                "the provider's task details do not list this URL; it was not fetched".to_owned();
            tracing::warn!(task_id = %task_id, index, "result URL not confirmed by the provider");
            return ResultEntry::failed(index, url, FailureKind::NotConfirmed, message);
        }

        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.transfer.retry.base_delay)
            .with_max_delay(self.transfer.retry.max_delay)
            .with_max_times(self.transfer.retry.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let failure = match self.fetch_and_store(task_id, index, url, deadline).await {
                Ok(entry) => {
                    tracing::info!(
                        task_id = %task_id,
                        index,
                        key = entry.key.as_deref(),
                        bytes = entry.bytes,
                        content_type = entry.content_type.as_deref(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "result archived"
                    );
                    return entry;
                }
                Err(failure) => failure,
            };

            let retry = failure.kind.is_retryable() && failure.kind != FailureKind::Deadline;
            match delays
                .next()
                .filter(|delay| retry && Instant::now() + *delay < deadline)
            {
                Some(delay) => {
                    tracing::warn!(
                        task_id = %task_id,
                        index,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %failure.message,
                        "transient failure; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => {
                    tracing::warn!(task_id = %task_id, index, attempt, kind = ?failure.kind, error = %failure.message, "result not archived");
                    return ResultEntry::failed(index, url, failure.kind, failure.message);
                }
            }
        }
    }

    async fn still_stored(&self, previous: &ResultEntry) -> Result<bool, StoreError> {
        let Some(key) = previous.key.as_deref() else {
            return Ok(false);
        };
        match self.store.head(key).await {
            Ok(head) => Ok(head.is_some_and(|h| Some(h.size) == previous.bytes)),
            // S3 returns 403 for a missing key to a caller without s3:ListBucket;
            // fetching the result again is then the safe choice.
            Err(err) if err.status == Some(403) => {
                tracing::debug!(
                    key,
                    "HeadObject returned 403; treating the result as not stored"
                );
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Runs one attempt: GET the source, decide the type, stream it into S3.
    async fn fetch_and_store(
        &self,
        task_id: &TaskId,
        index: usize,
        raw_url: &str,
        deadline: Instant,
    ) -> Result<ResultEntry, ResultFailure> {
        let url = self.fetcher.policy().check_url(raw_url).map_err(refused)?;
        let response = match tokio::time::timeout_at(deadline, self.fetcher.get(&url)).await {
            Err(_) => {
                return Err(failure(
                    FailureKind::Deadline,
                    "deadline reached before the source answered",
                ))
            }
            Ok(result) => result.map_err(fetch_failure)?,
        };

        let declared_len = response.content_length();
        if let Some(len) = declared_len.filter(|len| *len > self.transfer.max_result_bytes) {
            return Err(failure(
                FailureKind::TooLarge,
                format!(
                    "Content-Length {len} exceeds MAX_RESULT_BYTES ({})",
                    self.transfer.max_result_bytes
                ),
            ));
        }

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let declared = media_type::classify(content_type.as_deref());
        if let Declared::Rejected { mime } = &declared {
            return Err(failure(
                FailureKind::NotMedia,
                format!("Content-Type {mime} is not an image or video"),
            ));
        }

        let mut body = response.bytes_stream();
        let mut head = BytesMut::new();
        while head.len() < SNIFF_LEN {
            match tokio::time::timeout_at(deadline, body.next()).await {
                Err(_) => {
                    return Err(failure(
                        FailureKind::Deadline,
                        "deadline reached while reading the source",
                    ))
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => head.extend_from_slice(&chunk),
                Ok(Some(Err(err))) => {
                    return Err(failure(FailureKind::Transient, error_chain(&err)));
                }
            }
        }
        if head.is_empty() {
            return Err(failure(FailureKind::Empty, "the source sent an empty body"));
        }

        let Some(media) = media_type::resolve(&declared, &url, &head) else {
            return Err(failure(
                FailureKind::NotMedia,
                format!(
                    "Content-Type {} and the first bytes do not identify an image or video",
                    content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        };

        let key = self.layout.result_key(task_id, index, &media.ext);
        let attributes = ObjectAttributes {
            content_type: media.mime.clone(),
            content_disposition: Some(format!(
                "attachment; filename=\"{task_id}-{index}.{}\"",
                media.ext
            )),
            metadata: vec![
                ("task-id".into(), task_id.to_string()),
                ("result-index".into(), index.to_string()),
                ("source-url".into(), url.to_string()),
            ],
        };

        let uploaded = self
            .uploader
            .upload(
                &key,
                &attributes,
                declared_len,
                head.freeze(),
                body,
                deadline,
            )
            .await
            .map_err(upload_failure)?;

        Ok(ResultEntry {
            index,
            source_url: raw_url.to_owned(),
            key: Some(key),
            content_type: Some(media.mime),
            bytes: Some(uploaded.bytes),
            sha256: Some(uploaded.sha256),
            error: None,
        })
    }
}

fn failure(kind: FailureKind, message: impl Into<String>) -> ResultFailure {
    ResultFailure {
        kind,
        message: message.into(),
    }
}

fn refused(err: SourceError) -> ResultFailure {
    let kind = match err {
        SourceError::InvalidUrl(_) => FailureKind::InvalidUrl,
        _ => FailureKind::Refused,
    };
    failure(kind, err.to_string())
}

fn fetch_failure(err: FetchError) -> ResultFailure {
    match err {
        FetchError::Refused(refusal) => refused(refusal),
        FetchError::Status { status } if !err.is_transient() => failure(
            FailureKind::HttpStatus,
            format!("the source answered HTTP {status}"),
        ),
        FetchError::Redirect(_) => failure(FailureKind::Refused, error_chain(&err)),
        _ => failure(FailureKind::Transient, error_chain(&err)),
    }
}

fn upload_failure(err: UploadError) -> ResultFailure {
    let kind = match &err {
        UploadError::TooLarge { .. } | UploadError::TooManyParts { .. } => FailureKind::TooLarge,
        UploadError::Empty => FailureKind::Empty,
        UploadError::Deadline { .. } => FailureKind::Deadline,
        UploadError::Body { .. } | UploadError::LengthMismatch { .. } => FailureKind::Transient,
        UploadError::Store(_) | UploadError::Task(_) => FailureKind::Storage,
    };
    failure(kind, error_chain(&err))
}
