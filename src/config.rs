//! Typed configuration, read once from the environment at cold start.
//!
//! Every variable is parsed here. A bad value fails start-up with a message
//! that names the variable, the value and what is accepted.

use std::str::FromStr;
use std::time::Duration;

use crate::callback::CallbackLimits;
use crate::keys::KeyLayout;
use crate::secret::Secret;
use crate::signature::Tolerance;
use crate::source_guard::SourcePolicy;

const MIB: u64 = 1024 * 1024;

/// S3's minimum size of every multipart part but the last.
pub const S3_MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's maximum size of one part.
pub const S3_MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    /// The value as given, or `<redacted>` for secrets.
    pub value: String,
    pub expected: String,
}

/// Reads variables through a lookup function so tests need not touch the
/// process environment.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(lookup: F) -> Self {
        Self { lookup }
    }

    /// Returns a set, non-empty value.
    pub fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    fn get(&self, name: &str) -> Option<String> {
        self.string(name)
    }

    fn required(&self, name: &'static str, expected: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError {
            variable: name,
            value: String::new(),
            expected: format!("{expected} (the variable is required)"),
        })
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    pub fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError {
                variable: name,
                value,
                expected: "true or false".into(),
            }),
        }
    }

    /// Parses an integer in `min..=max`, or returns `default` when unset.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let expected = || format!("an integer from {min} to {max} (default {default})");
        match value.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ConfigError {
                variable: name,
                value,
                expected: expected(),
            }),
        }
    }

    fn millis(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min, max)
            .map(Duration::from_millis)
    }
}

/// Settings both functions and the command share.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub bucket: String,
    pub layout: KeyLayout,
}

impl StorageConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let bucket = env.required("BUCKET_NAME", "the name of the S3 bucket")?;
        if !is_valid_bucket_name(&bucket) {
            return Err(ConfigError {
                variable: "BUCKET_NAME",
                value: bucket,
                expected: "an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', \
                           starting and ending with a letter or digit"
                    .into(),
            });
        }

        let prefix = env.get("KEY_PREFIX").unwrap_or_default();
        let layout = KeyLayout::new(&prefix).map_err(|_| ConfigError {
            variable: "KEY_PREFIX",
            value: prefix.clone(),
            expected: "empty, or up to 512 bytes ending in '/' with no leading '/' and no \
                       empty, '.' or '..' segment, such as \"midjourney/\""
                .into(),
        })?;

        Ok(Self { bucket, layout })
    }
}

/// Checks the general-purpose bucket naming rules that matter for building
/// requests (length, characters, first and last character).
fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-';
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
}

fn callback_limits<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<CallbackLimits, ConfigError> {
    let defaults = CallbackLimits::default();
    Ok(CallbackLimits {
        max_result_urls: env.number("MAX_RESULT_URLS", defaults.max_result_urls, 1, 1000)?,
        max_url_length: env.number("MAX_URL_LENGTH", defaults.max_url_length, 16, 1536)?,
    })
}

/// The receiver's configuration.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub storage: StorageConfig,
    pub hmac_key: Option<Secret>,
    pub token: Option<Secret>,
    pub tolerance: Tolerance,
    pub max_body_bytes: usize,
    pub limits: CallbackLimits,
}

impl ReceiverConfig {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let defaults = Tolerance::default();
        Ok(Self {
            storage: StorageConfig::from_env(env)?,
            hmac_key: env.secret("WEBHOOK_HMAC_KEY"),
            token: env.secret("CALLBACK_TOKEN"),
            tolerance: Tolerance {
                max_age: Duration::from_secs(env.number(
                    "SIGNATURE_MAX_AGE_SECONDS",
                    defaults.max_age.as_secs(),
                    1,
                    7 * 24 * 3600,
                )?),
                max_future_skew: Duration::from_secs(env.number(
                    "SIGNATURE_MAX_FUTURE_SECONDS",
                    defaults.max_future_skew.as_secs(),
                    0,
                    24 * 3600,
                )?),
            },
            max_body_bytes: env.number(
                "MAX_CALLBACK_BYTES",
                Self::DEFAULT_MAX_BODY_BYTES,
                1024,
                6 * 1024 * 1024,
            )?,
            limits: callback_limits(env)?,
        })
    }
}

/// Retry schedule for transient source failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per result, the first included.
    pub max_attempts: usize,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// Transfer settings: part size, memory and concurrency bounds, timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferConfig {
    /// Size of one multipart part, and the largest result sent as one PutObject.
    pub part_size: usize,
    /// Part buffers allowed at once across all results; memory for bodies is
    /// bounded by `part_size * max_buffered_parts`.
    pub max_buffered_parts: usize,
    /// Results fetched at once.
    pub result_concurrency: usize,
    pub max_result_bytes: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_redirects: usize,
    pub retry: RetryConfig,
    /// Time kept free before the Lambda deadline to record progress and fail cleanly.
    pub deadline_margin: Duration,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            part_size: (8 * MIB) as usize,
            max_buffered_parts: 4,
            result_concurrency: 4,
            max_result_bytes: 2 * 1024 * MIB,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            max_redirects: 5,
            retry: RetryConfig {
                max_attempts: 4,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
            },
            deadline_margin: Duration::from_secs(3),
        }
    }
}

impl TransferConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(Self {
            part_size: env.number(
                "PART_SIZE_BYTES",
                d.part_size as u64,
                S3_MIN_PART_SIZE,
                512 * MIB,
            )? as usize,
            max_buffered_parts: env.number("MAX_BUFFERED_PARTS", d.max_buffered_parts, 1, 64)?,
            result_concurrency: env.number("RESULT_CONCURRENCY", d.result_concurrency, 1, 64)?,
            max_result_bytes: env.number(
                "MAX_RESULT_BYTES",
                d.max_result_bytes,
                1,
                10_000 * S3_MAX_PART_SIZE,
            )?,
            connect_timeout: env.millis(
                "CONNECT_TIMEOUT_MS",
                ms(d.connect_timeout),
                100,
                60_000,
            )?,
            read_timeout: env.millis("READ_TIMEOUT_MS", ms(d.read_timeout), 100, 900_000)?,
            max_redirects: env.number("MAX_REDIRECTS", d.max_redirects, 0, 10)?,
            retry: RetryConfig {
                max_attempts: env.number("FETCH_MAX_ATTEMPTS", d.retry.max_attempts, 1, 10)?,
                base_delay: env.millis("RETRY_BASE_DELAY_MS", ms(d.retry.base_delay), 1, 60_000)?,
                max_delay: env.millis("RETRY_MAX_DELAY_MS", ms(d.retry.max_delay), 1, 300_000)?,
            },
            deadline_margin: env.millis("DEADLINE_MARGIN_MS", ms(d.deadline_margin), 0, 60_000)?,
        })
    }
}

/// The provider's task-details API, used by `mj-archive fetch` and, when a
/// key is set, by the archiver to cross-check result URLs.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub api_key: Secret,
    pub base_url: url::Url,
}

impl ProviderConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.kie.ai";

    /// Returns `None` when `PROVIDER_API_KEY` is unset.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(api_key) = env.secret("PROVIDER_API_KEY") else {
            return Ok(None);
        };
        let raw = env
            .get("PROVIDER_API_BASE_URL")
            .unwrap_or_else(|| Self::DEFAULT_BASE_URL.to_owned());
        let base_url = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ConfigError {
                variable: "PROVIDER_API_BASE_URL",
                value: raw.clone(),
                expected: format!("an http(s) URL such as {}", Self::DEFAULT_BASE_URL),
            })?;
        Ok(Some(Self { api_key, base_url }))
    }
}

/// The archiver's configuration.
#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    pub storage: StorageConfig,
    pub sources: SourcePolicy,
    pub limits: CallbackLimits,
    pub transfer: TransferConfig,
    pub provider: Option<ProviderConfig>,
}

impl ArchiverConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            storage: StorageConfig::from_env(env)?,
            sources: SourcePolicy::from_env(env)?,
            limits: callback_limits(env)?,
            transfer: TransferConfig::from_env(env)?,
            provider: ProviderConfig::from_env(env)?,
        })
    }
}

/// Builds the S3 client from the SDK's standard environment
/// (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, credentials, region) plus
/// `S3_FORCE_PATH_STYLE=true` for local S3 servers.
pub async fn s3_client_from_env(
    timeouts: Option<aws_sdk_s3::config::timeout::TimeoutConfig>,
) -> Result<aws_sdk_s3::Client, ConfigError> {
    let force_path_style = Env::process().bool("S3_FORCE_PATH_STYLE", false)?;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;

    let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(force_path_style);
    if let Some(timeouts) = timeouts {
        builder = builder.timeout_config(timeouts);
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_fn(move |name| map.get(name).cloned())
    }

    #[test]
    fn receiver_defaults() {
        let config = ReceiverConfig::from_env(&env(&[("BUCKET_NAME", "my-bucket")])).unwrap();

        assert_eq!(config.storage.bucket, "my-bucket");
        assert_eq!(config.storage.layout.prefix(), "");
        assert_eq!(config.max_body_bytes, 256 * 1024);
        assert_eq!(config.tolerance, Tolerance::default());
        assert!(config.hmac_key.is_none());
    }

    #[test]
    fn missing_bucket_names_variable() {
        let err = ReceiverConfig::from_env(&env(&[])).unwrap_err();

        assert_eq!(err.variable, "BUCKET_NAME");
        assert!(err.to_string().contains("required"), "{err}");
    }

    #[test]
    fn bad_values_name_variable_value_and_range() {
        let err =
            ArchiverConfig::from_env(&env(&[("BUCKET_NAME", "b-1"), ("PART_SIZE_BYTES", "1024")]))
                .unwrap_err();
        assert_eq!(err.variable, "PART_SIZE_BYTES");
        assert_eq!(err.value, "1024");
        assert_eq!(
            err.to_string(),
            "invalid PART_SIZE_BYTES=\"1024\": expected an integer from 5242880 to 536870912 (default 8388608)"
        );

        let err = ArchiverConfig::from_env(&env(&[
            ("BUCKET_NAME", "b-1"),
            ("ALLOW_PRIVATE_SOURCES", "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "ALLOW_PRIVATE_SOURCES");

        let err = ReceiverConfig::from_env(&env(&[("BUCKET_NAME", "b-1"), ("KEY_PREFIX", "mj")]))
            .unwrap_err();
        assert_eq!(err.variable, "KEY_PREFIX");
    }

    #[test]
    fn bucket_name_rules() {
        for valid in ["mj-archive-test", "a.b-c", "abc"] {
            assert!(is_valid_bucket_name(valid), "{valid}");
        }
        for invalid in ["Bad_Bucket!", "ab", "-abc", "abc-", "a/b", &"a".repeat(64)] {
            let err = StorageConfig::from_env(&env(&[("BUCKET_NAME", invalid)])).unwrap_err();
            assert_eq!(err.variable, "BUCKET_NAME", "{invalid}");
            assert_eq!(err.value, invalid);
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let config = ReceiverConfig::from_env(&env(&[
            ("BUCKET_NAME", "b-1"),
            ("WEBHOOK_HMAC_KEY", "very-secret-key"),
            ("CALLBACK_TOKEN", "very-secret-token"),
        ]))
        .unwrap();
        let debug = format!("{config:?}");

        assert!(!debug.contains("very-secret"), "{debug}");
    }
}
