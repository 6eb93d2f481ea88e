//! The S3 operations the functions use, on one bucket.
//!
//! Small `async fn`s over `aws_sdk_s3::Client`; each error names the
//! operation and key and keeps the SDK error as its source.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

/// Retries of a conditional PUT after S3 returns 409 `ConditionalRequestConflict`,
/// which means another conditional write to the same key is in flight.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} failed for s3://{bucket}/{key}")]
pub struct StoreError {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    /// HTTP status of S3's response, when there was one.
    pub status: Option<u16>,
    /// S3 error code, such as `SlowDown` or `AccessDenied`, when there was one.
    pub code: Option<String>,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Returns whether a later attempt may succeed: throttling, 5xx, timeouts
    /// and connection failures. `AccessDenied` or a missing bucket are not.
    pub fn is_transient(&self) -> bool {
        match self.status {
            Some(status) => status >= 500 || status == 429 || status == 408,
            None => !matches!(self.code.as_deref(), Some("AccessDenied" | "NoSuchBucket")),
        }
    }
}

/// Outcome of a conditional create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The key already existed; nothing was written.
    AlreadyExists,
}

/// Attributes of an archived object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    pub content_type: String,
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: Vec<(String, String)>,
}

/// Size and type from a HeadObject response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        StoreError {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            status: raw_status(&err),
            code: err.code().map(str::to_owned),
            source: Box::new(err),
        }
    }

    /// Wraps a failure that has no S3 response (a body read, a missing field,
    /// a presigning setting), so it has no status or error code.
    fn local_error(
        &self,
        operation: &'static str,
        key: &str,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> StoreError {
        StoreError {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            status: None,
            code: None,
            source,
        }
    }

    /// Writes `body` only if `key` does not exist yet (`If-None-Match: *`), so
    /// a duplicate changes nothing.
    pub async fn create_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<CreateOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_none_match("*")
                .content_type(content_type)
                .body(ByteStream::from(body.clone()))
                .send()
                .await;

            let err = match result {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(err) => self.error("PutObject", key, err),
            };
            match (err.status, err.code.as_deref()) {
                (Some(412), _) | (_, Some("PreconditionFailed")) => {
                    return Ok(CreateOutcome::AlreadyExists)
                }
                (Some(409), _) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(key, attempt, "conditional write conflict, retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// Reads a whole object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(self.error("GetObject", key, err)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|err| self.local_error("GetObject", key, Box::new(err)))?;
        Ok(Some(body.into_bytes()))
    }

    /// Size and type of an object; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(ObjectHead {
                size: output.content_length.unwrap_or(0).max(0) as u64,
                content_type: output.content_type,
            })),
            Err(err) if raw_status(&err) == Some(404) => Ok(None),
            Err(err) => Err(self.error("HeadObject", key, err)),
        }
    }

    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        attributes: &ObjectAttributes,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&attributes.content_type)
            .set_content_disposition(attributes.content_disposition.clone())
            .body(ByteStream::from(body));
        for (name, value) in &attributes.metadata {
            request = request.metadata(name, value);
        }
        request
            .send()
            .await
            .map_err(|err| self.error("PutObject", key, err))?;
        Ok(())
    }

    pub async fn create_multipart_upload(
        &self,
        key: &str,
        attributes: &ObjectAttributes,
    ) -> Result<String, StoreError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&attributes.content_type)
            .set_content_disposition(attributes.content_disposition.clone());
        for (name, value) in &attributes.metadata {
            request = request.metadata(name, value);
        }
        let output = request
            .send()
            .await
            .map_err(|err| self.error("CreateMultipartUpload", key, err))?;
        output.upload_id.ok_or_else(|| {
            self.local_error(
                "CreateMultipartUpload",
                key,
                "S3 returned no upload id".into(),
            )
        })
    }

    /// Uploads one part; `part_number` starts at 1.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> Result<CompletedPart, StoreError> {
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| self.error("UploadPart", key, err))?;
        Ok(CompletedPart::builder()
            .part_number(part_number)
            .set_e_tag(output.e_tag)
            .build())
    }

    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| self.error("CompleteMultipartUpload", key, err))?;
        Ok(())
    }

    pub async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|err| self.error("AbortMultipartUpload", key, err))?;
        Ok(())
    }

    /// Keys under a prefix, in S3's order (lexicographic).
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.error("ListObjectsV2", prefix, err))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// Creates a presigned GET URL valid for `expires_in`.
    pub async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|err| self.local_error("presign GetObject", key, Box::new(err)))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|err| self.error("presign GetObject", key, err))?;
        Ok(request.uri().to_owned())
    }
}

fn raw_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response()
        .map(|response| response.status().as_u16())
}
