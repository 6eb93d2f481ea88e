//! Object keys from S3 event notifications.

use aws_lambda_events::event::s3::S3Event;

/// One object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventKeyError {
    #[error("S3 event record {index} has no bucket name or object key")]
    MissingField { index: usize },
    #[error("S3 event record {index} has key {key:?}, which is not valid percent-encoded UTF-8")]
    InvalidEncoding { index: usize, key: String },
}

/// Decodes an S3 event key: S3 URL-encodes keys in notifications, with `+` for a space.
pub fn decode_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

/// Lists the objects an event names, with decoded keys, in record order.
pub fn objects(event: &S3Event) -> Vec<Result<ObjectRef, EventKeyError>> {
    event
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let bucket = record.s3.bucket.name.clone();
            let key = record.s3.object.key.clone();
            let (Some(bucket), Some(raw_key)) = (bucket, key) else {
                return Err(EventKeyError::MissingField { index });
            };
            let key = decode_key(&raw_key).ok_or(EventKeyError::InvalidEncoding {
                index,
                key: raw_key,
            })?;
            Ok(ObjectRef { bucket, key })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_space_and_percent_decoded() {
        assert_eq!(
            decode_key("mid+journey%2Bx/t/callback.json").as_deref(),
            Some("mid journey+x/t/callback.json")
        );
        assert_eq!(decode_key("a%2"), Some("a%2".into()));
        assert_eq!(decode_key("%FF"), None);
    }
}
