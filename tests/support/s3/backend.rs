//! The S3 implementation behind `S3Server`: s3s-fs plus the two behaviors of
//! real S3 that s3s-fs 0.14.1 lacks and the tests rely on.
//!
//! * ListMultipartUploads. s3s-fs returns `NotImplemented`, so this wrapper
//!   records uploads when they are created and removes them when they are
//!   completed or aborted.
//! * Atomic conditional writes. s3s-fs checks `If-None-Match: *` and then
//!   writes, so two concurrent PutObject calls on one key can both succeed.
//!   This wrapper serializes PutObject and CompleteMultipartUpload per key,
//!   which makes the check and the write one step, as in S3.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

/// One multipart upload that was created and is neither completed nor aborted.
#[derive(Clone, Debug)]
struct OpenUpload {
    bucket: String,
    key: String,
    initiated: SystemTime,
}

/// Write locks by (bucket, key).
type WriteLocks = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

pub struct TrackedFileSystem {
    inner: s3s_fs::FileSystem,
    /// Open uploads by upload id.
    uploads: Mutex<BTreeMap<String, OpenUpload>>,
    /// One lock per (bucket, key) for writes. Entries are never removed, which
    /// is fine for the few keys a test writes.
    write_locks: Mutex<WriteLocks>,
}

impl TrackedFileSystem {
    pub fn new(inner: s3s_fs::FileSystem) -> Self {
        TrackedFileSystem {
            inner,
            uploads: Mutex::new(BTreeMap::new()),
            write_locks: Mutex::new(HashMap::new()),
        }
    }

    fn write_lock(&self, bucket: &str, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.write_locks.lock().unwrap();
        locks
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default()
            .clone()
    }
}

#[async_trait::async_trait]
impl S3 for TrackedFileSystem {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let lock = self.write_lock(&req.input.bucket, &req.input.key);
        let _guard = lock.lock().await;
        self.inner.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let response = self.inner.create_multipart_upload(req).await?;

        if let Some(upload_id) = &response.output.upload_id {
            let upload = OpenUpload {
                bucket,
                key,
                initiated: SystemTime::now(),
            };
            self.uploads
                .lock()
                .unwrap()
                .insert(upload_id.clone(), upload);
        }
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        let lock = self.write_lock(&req.input.bucket, &req.input.key);
        let _guard = lock.lock().await;

        let response = self.inner.complete_multipart_upload(req).await?;
        self.uploads.lock().unwrap().remove(&upload_id);
        Ok(response)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        let response = self.inner.abort_multipart_upload(req).await?;
        self.uploads.lock().unwrap().remove(&upload_id);
        Ok(response)
    }

    /// Lists open uploads, honoring only the `prefix` parameter. The list is
    /// never truncated, and the markers, delimiter and max-uploads are ignored.
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let bucket = req.input.bucket;
        let prefix = req.input.prefix.unwrap_or_default();

        let mut uploads: Vec<MultipartUpload> = self
            .uploads
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, upload)| upload.bucket == bucket && upload.key.starts_with(&prefix))
            .map(|(upload_id, upload)| MultipartUpload {
                key: Some(upload.key.clone()),
                upload_id: Some(upload_id.clone()),
                initiated: Some(Timestamp::from(upload.initiated)),
                ..Default::default()
            })
            .collect();
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));

        let output = ListMultipartUploadsOutput {
            bucket: Some(bucket),
            prefix: Some(prefix),
            is_truncated: Some(false),
            max_uploads: Some(1000),
            uploads: Some(uploads),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    // Every operation below is passed to s3s-fs unchanged.

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.inner.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.inner.get_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }
}
