//! Verification of the provider's optional webhook signature.
//!
//! The provider sends `X-Webhook-Timestamp` (Unix seconds) and
//! `X-Webhook-Signature` = base64(HMAC-SHA256(`{taskId}.{timestamp}`, key)).
//! The signature covers the task id and the timestamp, not the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// How far a signed timestamp may lie from the receiver's clock.
///
/// The past bound must cover the provider's retries: it retries 3 times, 1, 5
/// and 15 minutes after a failed attempt, each with a 15 s timeout, so the last
/// retry comes about 21.75 minutes after the first. Its docs do not say whether
/// the timestamp is refreshed on retry, so the default allows 30 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    pub max_age: Duration,
    pub max_future_skew: Duration,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 60),
            max_future_skew: Duration::from_secs(5 * 60),
        }
    }
}

/// Signature rejection. Messages never contain the key or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Webhook-Timestamp header")]
    MissingTimestamp,
    #[error("missing X-Webhook-Signature header")]
    MissingSignature,
    #[error("X-Webhook-Timestamp is not Unix seconds")]
    InvalidTimestamp,
    #[error("X-Webhook-Timestamp {timestamp} is {age_secs} s old, the maximum is {max_secs} s")]
    Expired {
        timestamp: u64,
        age_secs: u64,
        max_secs: u64,
    },
    #[error(
        "X-Webhook-Timestamp {timestamp} is {ahead_secs} s in the future, the maximum is {max_secs} s"
    )]
    InFuture {
        timestamp: u64,
        ahead_secs: u64,
        max_secs: u64,
    },
    #[error("X-Webhook-Signature is not valid base64")]
    InvalidEncoding,
    #[error("X-Webhook-Signature does not match the task id and timestamp")]
    Mismatch,
}

/// Checks signatures against one HMAC key.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    key: Secret,
    tolerance: Tolerance,
}

impl SignatureVerifier {
    pub fn new(key: Secret, tolerance: Tolerance) -> Self {
        Self { key, tolerance }
    }

    /// Verifies the signature headers for `task_id` at the time `now`.
    ///
    /// The window is checked first, in both directions, with saturating
    /// arithmetic; the MAC comparison is constant-time (`Mac::verify_slice`).
    pub fn verify(
        &self,
        task_id: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        let signature = signature.ok_or(SignatureError::MissingSignature)?;
        let seconds: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp)?;

        self.check_window(seconds, now)?;

        let expected = BASE64
            .decode(signature.trim())
            .map_err(|_| SignatureError::InvalidEncoding)?;
        let mut mac = mac_for(&self.key);
        mac.update(signed_message(task_id, seconds).as_bytes());
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }

    fn check_window(&self, timestamp: u64, now: SystemTime) -> Result<(), SignatureError> {
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let age = now_secs.saturating_sub(timestamp);
        let ahead = timestamp.saturating_sub(now_secs);

        if age > self.tolerance.max_age.as_secs() {
            return Err(SignatureError::Expired {
                timestamp,
                age_secs: age,
                max_secs: self.tolerance.max_age.as_secs(),
            });
        }
        if ahead > self.tolerance.max_future_skew.as_secs() {
            return Err(SignatureError::InFuture {
                timestamp,
                ahead_secs: ahead,
                max_secs: self.tolerance.max_future_skew.as_secs(),
            });
        }
        Ok(())
    }
}

/// Computes the provider's signature, for tests and for `mj-archive sign`.
pub fn sign(key: &Secret, task_id: &str, timestamp: u64) -> String {
    let mut mac = mac_for(key);
    mac.update(signed_message(task_id, timestamp).as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

fn mac_for(key: &Secret) -> HmacSha256 {
    // `Hmac::new_from_slice` accepts keys of any length (RFC 2104 hashes long keys), so this cannot fail.
    HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length")
}

fn signed_message(task_id: &str, timestamp: u64) -> String {
    format!("{task_id}.{timestamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test_webhook_hmac_key";
    const TASK: &str = "mj_task_12345";
    const TS: u64 = 1_700_000_000;
    const EXPECTED: &str = "iJevCZ4VzMVEvJeXclTfHd5SXWsbVx0bs6b2d5frLhg=";

    fn verifier() -> SignatureVerifier {
        SignatureVerifier::new(Secret::new(KEY), Tolerance::default())
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(sign(&Secret::new(KEY), TASK, TS), EXPECTED);
        assert_eq!(
            verifier().verify(TASK, Some("1700000000"), Some(EXPECTED), at(TS)),
            Ok(())
        );
    }

    #[test]
    fn window_boundaries_both_directions() {
        let v = verifier();
        let age = Tolerance::default().max_age.as_secs();
        let skew = Tolerance::default().max_future_skew.as_secs();
        let ts = Some("1700000000");

        assert_eq!(v.verify(TASK, ts, Some(EXPECTED), at(TS + age)), Ok(()));
        assert_eq!(
            v.verify(TASK, ts, Some(EXPECTED), at(TS + age + 1)),
            Err(SignatureError::Expired {
                timestamp: TS,
                age_secs: age + 1,
                max_secs: age
            })
        );
        assert_eq!(v.verify(TASK, ts, Some(EXPECTED), at(TS - skew)), Ok(()));
        assert_eq!(
            v.verify(TASK, ts, Some(EXPECTED), at(TS - skew - 1)),
            Err(SignatureError::InFuture {
                timestamp: TS,
                ahead_secs: skew + 1,
                max_secs: skew
            })
        );
    }

    #[test]
    fn extreme_timestamps_saturate() {
        let v = verifier();

        assert!(matches!(
            v.verify(TASK, Some("18446744073709551615"), Some(EXPECTED), at(TS)),
            Err(SignatureError::InFuture { .. })
        ));
        assert!(matches!(
            v.verify(TASK, Some("0"), Some(EXPECTED), at(TS)),
            Err(SignatureError::Expired { .. })
        ));
        assert_eq!(
            v.verify(TASK, Some("1"), Some(EXPECTED), UNIX_EPOCH),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn each_header_problem_has_its_variant() {
        let v = verifier();
        let now = at(TS);

        assert_eq!(
            v.verify(TASK, None, Some(EXPECTED), now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            v.verify(TASK, Some("1700000000"), None, now),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            v.verify(TASK, Some("-5"), Some(EXPECTED), now),
            Err(SignatureError::InvalidTimestamp)
        );
        assert_eq!(
            v.verify(TASK, Some("17e8"), Some(EXPECTED), now),
            Err(SignatureError::InvalidTimestamp)
        );
        assert_eq!(
            v.verify(TASK, Some("1700000000"), Some("not base64!"), now),
            Err(SignatureError::InvalidEncoding)
        );
        assert_eq!(
            v.verify("mj_task_12346", Some("1700000000"), Some(EXPECTED), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(TASK, Some("1700000001"), Some(EXPECTED), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            SignatureVerifier::new(Secret::new("other"), Tolerance::default()).verify(
                TASK,
                Some("1700000000"),
                Some(EXPECTED),
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let v = verifier();
        let debug = format!("{v:?}");

        assert!(!debug.contains(KEY), "{debug}");
        let err = v
            .verify(TASK, Some("1700000001"), Some(EXPECTED), at(TS))
            .unwrap_err();
        assert_eq!(err, SignatureError::Mismatch);
        assert!(!err.to_string().contains(EXPECTED));
    }
}
