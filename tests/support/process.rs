//! Child processes for tests that run the real binaries.

use std::ffi::OsStr;
use std::fs::File;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::NamedTempFile;

/// Path of the `receiver` binary that cargo built for this test run.
pub const RECEIVER_BIN: &str = env!("CARGO_BIN_EXE_receiver");
/// Path of the `archiver` binary that cargo built for this test run.
pub const ARCHIVER_BIN: &str = env!("CARGO_BIN_EXE_archiver");
/// Path of the `mj-archive` CLI binary that cargo built for this test run.
pub const CLI_BIN: &str = env!("CARGO_BIN_EXE_mj-archive");

/// Variables kept from the test's own environment; everything else is cleared.
const INHERITED_VARIABLES: [&str; 2] = ["PATH", "HOME"];

/// A child process that is killed (SIGKILL to its own PID) and reaped when
/// the guard is dropped. Its stdout and stderr go to temporary files that
/// can be read at any time, for example in a failure message.
pub struct ChildGuard {
    child: Child,
    program: String,
    stdout: NamedTempFile,
    stderr: NamedTempFile,
}

impl ChildGuard {
    /// Starts `program` with `args`, an environment that contains only `PATH`,
    /// `HOME` and `env`, and stdin closed. Panics if the process cannot start.
    pub fn spawn<S: AsRef<OsStr>>(
        program: &str,
        args: &[S],
        env: &[(String, String)],
    ) -> ChildGuard {
        let stdout = NamedTempFile::new().expect("failed to create the stdout capture file");
        let stderr = NamedTempFile::new().expect("failed to create the stderr capture file");

        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(clone_file(stdout.as_file())))
            .stderr(Stdio::from(clone_file(stderr.as_file())));
        for name in INHERITED_VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }

        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start {program}: {err}"));
        ChildGuard {
            child,
            program: program.to_owned(),
            stdout,
            stderr,
        }
    }

    /// Returns the process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Returns the exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .expect("failed to poll the child process")
    }

    /// Waits for the process to exit for at most `timeout`, polling without
    /// blocking the async runtime. Returns `None` if it is still running.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process unless it has already exited, then reaps it.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            // kill fails only if the process has already been reaped.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Returns everything the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_capture(&self.stdout)
    }

    /// Returns everything the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_capture(&self.stderr)
    }

    /// Returns the program, stdout and stderr in one labeled block for
    /// assertion messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} (pid {}) stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.program,
            self.id(),
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn clone_file(file: &File) -> File {
    file.try_clone()
        .expect("failed to duplicate the capture file handle")
}

fn read_capture(file: &NamedTempFile) -> String {
    let bytes = std::fs::read(file.path()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
