//! The `mj-archive` command line.

use std::io::IsTerminal;

use clap::Parser;
use mj_archive::cli::{main_with, Cli};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        // Color codes only for a terminal, so that redirected logs stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MJ_ARCHIVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    std::process::exit(main_with(cli).await);
}
