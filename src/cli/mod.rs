//! The `mj-archive` command: recover missed tasks, re-run archives, and
//! browse what is stored.

mod render;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use tokio::time::Instant;

use crate::archive::{Archiver, RunOptions, TaskSource};
use crate::config::{s3_client_from_env, ArchiverConfig, ConfigError, Env, ProviderConfig};
use crate::manifest::{ArchiveStatus, Manifest};
use crate::metrics::Metrics;
use crate::provider::{ProviderClient, TaskState};
use crate::report::error_chain;
use crate::secret::Secret;
use crate::signature::sign;
use crate::task_id::TaskId;

pub use render::{gallery_html, status_text};

/// Recover, re-run and browse Midjourney archives in S3.
///
/// Reads BUCKET_NAME and KEY_PREFIX like the functions do, and the provider's
/// API settings PROVIDER_API_KEY and PROVIDER_API_BASE_URL for `fetch`. The
/// S3 endpoint and credentials come from the AWS SDK's usual environment
/// (S3_FORCE_PATH_STYLE=true for a local S3 server). `fetch` and `replay`
/// obey the archiver's settings, such as ALLOWED_SOURCE_HOSTS and
/// ALLOW_PRIVATE_SOURCES. MJ_ARCHIVE_LOG sets the log filter (default info).
///
/// Exit status: 0 success; 1 error, or results not archived; 2 invalid
/// settings or arguments; 3 task still generating; 4 task failed at the provider.
#[derive(Debug, Parser)]
#[command(name = "mj-archive", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Archive a task from the provider's task-details API (for a missed callback, or for polling).
    Fetch {
        /// The provider's task id, e.g. mj_task_12345.
        task_id: String,
        /// Seconds the whole archive may take.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Re-run the archive of a stored callback; results already archived are reused.
    Replay {
        /// The provider's task id, e.g. mj_task_12345.
        task_id: String,
        /// Seconds the whole archive may take.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Print a task's manifest as a readable summary.
    Status {
        /// The provider's task id, e.g. mj_task_12345.
        task_id: String,
        /// Print the manifest JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Write an HTML page with the prompt and presigned links to each result.
    Gallery {
        /// The provider's task id, e.g. mj_task_12345.
        task_id: String,
        /// Output file (default: <taskId>.html).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Lifetime of the presigned links, in seconds (at most 604800, 7 days).
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
        expires: u64,
    },
    /// Print the provider's signature headers for a task, to test a deployment with curl.
    Sign {
        /// HMAC key (the provider's webhook key). Prefer setting WEBHOOK_HMAC_KEY:
        /// an argument shows in `ps` and in shell history.
        #[arg(long, env = "WEBHOOK_HMAC_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Task id to sign; it must match the taskId of the body you send.
        #[arg(long)]
        task_id: String,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<u64>,
    },
}

/// A failure of one command, with the exit status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid task id")]
    TaskId(#[from] crate::task_id::TaskIdError),
    #[error("PROVIDER_API_KEY is not set; `fetch` needs the provider's API key")]
    MissingProviderKey,
    #[error("no HMAC key: set WEBHOOK_HMAC_KEY (or pass --key) to the key the receiver checks")]
    MissingHmacKey,
    #[error("task {0} is still generating at the provider; run `mj-archive fetch {0}` again when it is done")]
    StillGenerating(TaskId),
    #[error("task {task_id} failed at the provider (successFlag {flag}): {message}; there is nothing to archive")]
    ProviderFailed {
        task_id: TaskId,
        flag: i64,
        message: String,
    },
    #[error("no manifest or callback for task {task_id} under s3://{bucket}/{prefix}")]
    NotFound {
        task_id: TaskId,
        bucket: String,
        prefix: String,
    },
    #[error("task {task_id} has no manifest yet: the callback is stored but not archived; run `mj-archive replay {task_id}`")]
    NotArchived { task_id: TaskId },
    #[error("task {task_id} is {}: some results were not archived; see `mj-archive status {task_id}`", status.as_str())]
    Unfinished {
        task_id: TaskId,
        status: ArchiveStatus,
    },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::TaskId(_) | Self::MissingProviderKey | Self::MissingHmacKey => {
                2
            }
            Self::StillGenerating(_) => 3,
            Self::ProviderFailed { .. } => 4,
            _ => 1,
        }
    }

    fn other(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other(Box::new(err))
    }
}

/// Runs the command and returns the process exit status; errors go to stderr.
pub async fn main_with(cli: Cli) -> i32 {
    match run(cli).await {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("mj-archive: {}", error_chain(&err));
            err.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sign {
            key,
            task_id,
            timestamp,
        } => {
            let key = key
                .filter(|key| !key.is_empty())
                .ok_or(CliError::MissingHmacKey)?;
            let task_id = TaskId::parse(&task_id)?;
            let timestamp = timestamp.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
            });
            let signature = sign(&Secret::new(key), task_id.as_str(), timestamp);
            println!("X-Webhook-Timestamp: {timestamp}");
            println!("X-Webhook-Signature: {signature}");
            Ok(())
        }
        Command::Fetch { task_id, timeout } => fetch(TaskId::parse(&task_id)?, timeout).await,
        Command::Replay { task_id, timeout } => replay(TaskId::parse(&task_id)?, timeout).await,
        Command::Status { task_id, json } => status(TaskId::parse(&task_id)?, json).await,
        Command::Gallery {
            task_id,
            output,
            expires,
        } => {
            gallery(
                TaskId::parse(&task_id)?,
                output,
                Duration::from_secs(expires),
            )
            .await
        }
    }
}

/// Builds an archiver from the environment, without the provider cross-check,
/// because `fetch` takes the URLs from the provider already.
async fn archiver_from_env() -> Result<Archiver, CliError> {
    let config = ArchiverConfig::from_env(&Env::process())?;
    let client = s3_client_from_env(None).await?;
    Archiver::from_config(&config, client, None, Metrics::disabled()).map_err(CliError::other)
}

async fn fetch(task_id: TaskId, timeout: u64) -> Result<(), CliError> {
    let provider =
        ProviderConfig::from_env(&Env::process())?.ok_or(CliError::MissingProviderKey)?;
    let client = ProviderClient::new(provider).map_err(CliError::other)?;
    let details = client
        .task_details(&task_id)
        .await
        .map_err(CliError::other)?;

    match details.state {
        TaskState::Generating => return Err(CliError::StillGenerating(task_id)),
        TaskState::Failed { flag } => {
            return Err(CliError::ProviderFailed {
                task_id,
                flag,
                message: details
                    .error_message
                    .unwrap_or_else(|| "no error message".into()),
            })
        }
        TaskState::Success => {}
    }

    let archiver = archiver_from_env().await?;
    eprintln!(
        "archiving {} results of task {task_id} from the provider's API",
        details.result_urls.len()
    );
    let options = RunOptions {
        source: TaskSource::ProviderApi,
        force: true,
    };
    let manifest = archiver
        .archive_callback(&details.to_callback(), deadline_in(timeout), options)
        .await
        .map_err(CliError::other)?;
    finish(&archiver, manifest)
}

async fn replay(task_id: TaskId, timeout: u64) -> Result<(), CliError> {
    let archiver = archiver_from_env().await?;
    let manifest = archiver
        .archive_stored(&task_id, deadline_in(timeout), true)
        .await
        .map_err(CliError::other)?;
    finish(&archiver, manifest)
}

fn finish(archiver: &Archiver, manifest: Manifest) -> Result<(), CliError> {
    print!("{}", status_text(&manifest, archiver.store().bucket()));
    match manifest.status {
        ArchiveStatus::Complete | ArchiveStatus::ProviderFailed => Ok(()),
        status => Err(CliError::Unfinished {
            task_id: TaskId::parse(&manifest.task_id)?,
            status,
        }),
    }
}

async fn status(task_id: TaskId, json: bool) -> Result<(), CliError> {
    let archiver = archiver_from_env().await?;
    let manifest = load_manifest(&archiver, &task_id).await?;
    if json {
        let text = serde_json::to_string_pretty(&manifest).map_err(CliError::other)?;
        println!("{text}");
    } else {
        print!("{}", status_text(&manifest, archiver.store().bucket()));
    }
    Ok(())
}

async fn load_manifest(archiver: &Archiver, task_id: &TaskId) -> Result<Manifest, CliError> {
    if let Some(manifest) = archiver
        .read_manifest(task_id)
        .await
        .map_err(CliError::other)?
    {
        return Ok(manifest);
    }
    let callback_key = archiver.layout().callback_key(task_id);
    let callback = archiver
        .store()
        .head(&callback_key)
        .await
        .map_err(CliError::other)?;
    match callback {
        Some(_) => Err(CliError::NotArchived {
            task_id: task_id.clone(),
        }),
        None => Err(CliError::NotFound {
            task_id: task_id.clone(),
            bucket: archiver.store().bucket().to_owned(),
            prefix: archiver.layout().prefix().to_owned(),
        }),
    }
}

async fn gallery(
    task_id: TaskId,
    output: Option<PathBuf>,
    expires: Duration,
) -> Result<(), CliError> {
    let archiver = archiver_from_env().await?;
    let manifest = load_manifest(&archiver, &task_id).await?;

    let mut links = Vec::new();
    for entry in &manifest.results {
        let link = match &entry.key {
            Some(key) if entry.is_archived() => Some(
                archiver
                    .store()
                    .presign_get(key, expires)
                    .await
                    .map_err(CliError::other)?,
            ),
            _ => None,
        };
        links.push(link);
    }

    let path = output.unwrap_or_else(|| PathBuf::from(format!("{task_id}.html")));
    let html = gallery_html(&manifest, &links, expires);
    std::fs::write(&path, html).map_err(|source| CliError::Write {
        path: path.clone(),
        source,
    })?;
    println!(
        "wrote {} ({} results, links valid for {} s)",
        path.display(),
        links.len(),
        expires.as_secs()
    );
    Ok(())
}

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}
