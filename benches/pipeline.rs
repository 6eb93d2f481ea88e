//! End-to-end benchmark of the receiver and the archiver, all on 127.0.0.1.
//!
//! `scripts/bench` builds the release binaries and runs this program. It
//! measures the real `target/release/receiver` and `archiver` under the
//! Lambda Runtime API emulator of `tests/support`. They talk to an in-process
//! S3-compatible server (s3s-fs 0.14.1, SigV4 on) and an HTTP origin that
//! streams generated bodies. Every figure goes to `BENCHMARKS.md`.
//!
//! The machine may be busy with other work, so each figure is reported as a
//! ratio against a baseline measured in the same run: a PutObject from this
//! process, a hello-world `lambda_http` function, plain downloads and uploads,
//! and the shell and Python scripts in `scripts/bench.d/`.
//!
//! Settings (environment variables):
//! * `MJ_BENCH_QUICK=1`: small sizes and few samples, for a smoke run.
//! * `MJ_BENCH_ACK_SAMPLES` (default 1000), `MJ_BENCH_SPAWNS` (default 10),
//!   `MJ_BENCH_REPEATS` (default 3, runs of each throughput figure; the
//!   fastest counts).
//! * `MJ_BENCH_THROUGHPUT_MIB` (default 64, per result, 4 results),
//!   `MJ_BENCH_MEMORY_SMALL_MIB` (64), `MJ_BENCH_MEMORY_LARGE_MIB` (1024),
//!   `MJ_BENCH_SCALING_MIB` (16, per result), `MJ_BENCH_SWEEP_MIB` (32 per
//!   result, 8 results).
//! * `MJ_BENCH_OUTPUT`: the report's path (default `BENCHMARKS.md` in the
//!   repository); `MJ_BENCH_RELEASE_DIR` (default `target/release`);
//!   `MJ_BENCH_VENV` (default `.venv`, with `python` and `aws`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use mj_archive::secret::Secret;
use mj_archive::signature::sign;
use support::origin::{generated_bytes, Origin};
use support::process::ChildGuard;
use support::runtime_api::{lambda_env, Invocation, RuntimeApi};
use support::s3::S3Server;

const MIB: u64 = 1024 * 1024;
const KEY_PREFIX: &str = "midjourney/";
/// Fake key for the receiver's signature check, also used to sign the events.
const HMAC_KEY: &str = "test_webhook_hmac_key";
/// `Lambda-Runtime-Deadline-Ms` of every invocation, from the time it is delivered.
const INVOKE_DEADLINE: Duration = Duration::from_secs(900);
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest zipped bootstrap allowed by the size goal, in bytes (4 MB).
const ZIP_GOAL_BYTES: u64 = 4_000_000;

// ------------------------------------------------------------------ settings

struct Settings {
    quick: bool,
    ack_samples: usize,
    spawns: usize,
    repeats: usize,
    throughput_results: usize,
    throughput_bytes: u64,
    memory_small_bytes: u64,
    memory_large_bytes: u64,
    scaling_bytes: u64,
    scaling_counts: Vec<usize>,
    sweep_results: usize,
    sweep_bytes: u64,
    sweep_part_mib: Vec<u64>,
    sweep_concurrency: Vec<usize>,
    repo: PathBuf,
    release_dir: PathBuf,
    venv_bin: PathBuf,
    output: PathBuf,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| {
            panic!("invalid {name}={value:?}: expected a non-negative integer")
        }),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("MJ_BENCH_QUICK").is_ok_and(|v| v == "1");
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path_var = |name: &str, default: PathBuf| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .map(|p| if p.is_absolute() { p } else { repo.join(p) })
                .unwrap_or(default)
        };
        let pick = |quick_value: u64, full_value: u64| if quick { quick_value } else { full_value };

        Settings {
            quick,
            ack_samples: env_number("MJ_BENCH_ACK_SAMPLES", pick(100, 1000)) as usize,
            spawns: env_number("MJ_BENCH_SPAWNS", pick(3, 10)) as usize,
            repeats: env_number("MJ_BENCH_REPEATS", pick(1, 3)).max(1) as usize,
            throughput_results: 4,
            throughput_bytes: env_number("MJ_BENCH_THROUGHPUT_MIB", pick(8, 64)) * MIB,
            memory_small_bytes: env_number("MJ_BENCH_MEMORY_SMALL_MIB", pick(32, 64)) * MIB,
            memory_large_bytes: env_number("MJ_BENCH_MEMORY_LARGE_MIB", pick(128, 1024)) * MIB,
            scaling_bytes: env_number("MJ_BENCH_SCALING_MIB", pick(4, 16)) * MIB,
            scaling_counts: vec![1, 4, 16],
            sweep_results: if quick { 4 } else { 8 },
            sweep_bytes: env_number("MJ_BENCH_SWEEP_MIB", pick(8, 32)) * MIB,
            sweep_part_mib: if quick { vec![5, 8] } else { vec![5, 8, 16] },
            sweep_concurrency: if quick { vec![2, 4] } else { vec![2, 4, 8] },
            release_dir: path_var(
                "MJ_BENCH_RELEASE_DIR",
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| repo.join("target"))
                    .join("release"),
            ),
            venv_bin: path_var("MJ_BENCH_VENV", repo.join(".venv")).join("bin"),
            output: path_var("MJ_BENCH_OUTPUT", repo.join("BENCHMARKS.md")),
            repo,
        }
    }

    fn binary(&self, name: &str) -> String {
        let path = self.release_dir.join(name);
        assert!(
            path.is_file(),
            "{} is missing; build it with scripts/bench (cargo build --release --bins --example hello_lambda)",
            path.display()
        );
        path.to_string_lossy().into_owned()
    }
}

// ------------------------------------------------------------------ report

/// One goal with its measured ratio.
struct Goal {
    what: String,
    goal: String,
    measured: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    goals: Vec<Goal>,
    sections: String,
    /// Median peak RSS of an archiver that served one event with no transfer, in MiB.
    archiver_idle_mib: f64,
    /// Warm PutObject p50 from this process (section 1), in ms.
    floor_p50_ms: f64,
}

impl Report {
    fn goal(&mut self, what: impl Into<String>, goal: &str, ratio: f64, limit: f64, at_most: bool) {
        let met = if at_most {
            ratio <= limit
        } else {
            ratio >= limit
        };
        self.goals.push(Goal {
            what: what.into(),
            goal: goal.to_owned(),
            measured: format!("{ratio:.2}"),
            met,
        });
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.sections.push_str(text.as_ref());
        self.sections.push('\n');
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

// ------------------------------------------------------------------ helpers

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Returns the value at quantile `q` (0.5 = median) of `values` by the
/// nearest-rank method.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Reads a `/proc/PID/status` field in KiB, such as `VmHWM` (peak RSS).
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// Clock ticks per second of `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    command_output("getconf", &["CLK_TCK"])
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// User plus system CPU time of a process (`self` or a PID), in seconds.
fn cpu_seconds(pid: &str, ticks: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name; utime and stime are fields 14 and 15 of stat(5).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_else(|err| format!("({program} failed: {err})"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("failed to read {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn s3_event(template: &Value, bucket: &str, key: &str) -> Value {
    let mut event = template.clone();
    event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
    event["Records"][0]["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    event["Records"][0]["s3"]["object"]["key"] = json!(key);
    event
}

fn callback_body(task_id: &str, urls: &[String]) -> String {
    json!({
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": task_id,
            "promptJson": "{\"prompt\":\"a beautiful landscape\",\"model\":\"midjourney\"}",
            "resultUrls": urls,
        }
    })
    .to_string()
}

/// Builds an API Gateway HTTP API event that posts `body`, signed for `task_id` now.
fn receiver_event(template: &Value, task_id: &str, body: &str) -> Value {
    let timestamp = unix_seconds();
    let signature = sign(&Secret::new(HMAC_KEY), task_id, timestamp);
    let mut event = template.clone();
    event["body"] = json!(body);
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["headers"]["x-webhook-timestamp"] = json!(timestamp.to_string());
    event["headers"]["x-webhook-signature"] = json!(signature);
    event
}

/// Returns the `statusCode` of a lambda_http response, panicking on anything else.
fn http_status(outcome: &Invocation, child: &ChildGuard) -> u64 {
    match outcome {
        Invocation::Response(_) => outcome.json()["statusCode"].as_u64().unwrap_or(0),
        other => panic!(
            "expected an HTTP response, got {other:?}\n{}",
            child.output()
        ),
    }
}

/// Event templates read once from `events/`.
struct Events {
    http_post: Value,
    http_get: Value,
    s3_created: Value,
}

impl Events {
    fn load(repo: &Path) -> Events {
        Events {
            http_post: read_json(&repo.join("events/apigw-http-success.json")),
            http_get: read_json(&repo.join("events/apigw-http-get.json")),
            s3_created: read_json(&repo.join("events/s3-callback-created.json")),
        }
    }
}

/// A Lambda function process polling its own Runtime API emulator.
struct Function {
    api: RuntimeApi,
    child: ChildGuard,
}

impl Function {
    async fn start(binary: &str, name: &str, s3: &S3Server, extra: &[(&str, String)]) -> Function {
        let api = RuntimeApi::start().await;
        let env = function_env(name, &api, s3, extra);
        let mut child = ChildGuard::spawn(binary, &[] as &[&str], &env);
        if !api.wait_for_pollers(1, START_TIMEOUT).await {
            let status = child.try_wait();
            panic!(
                "{name} did not poll for events (exit status {status:?})\n{}",
                child.output()
            );
        }
        Function { api, child }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

fn function_env(
    name: &str,
    api: &RuntimeApi,
    s3: &S3Server,
    extra: &[(&str, String)],
) -> Vec<(String, String)> {
    let mut env = lambda_env(name, &api.address());
    env.extend(s3.env());
    env.push(("KEY_PREFIX".into(), KEY_PREFIX.into()));
    env.push(("WEBHOOK_HMAC_KEY".into(), HMAC_KEY.into()));
    env.push(("ALLOW_PRIVATE_SOURCES".into(), "true".into()));
    for (variable, value) in extra {
        env.push(((*variable).to_owned(), value.clone()));
    }
    env
}

// ------------------------------------------------------------------ archiver runs

/// One archiver invocation in a fresh process.
struct ArchiveRun {
    wall: Duration,
    vm_hwm_kib: u64,
    cpu_seconds: f64,
    host_cpu_seconds: f64,
}

/// Starts a fresh archiver, stores a callback for `urls` and invokes it with
/// the S3 event. The wall time runs from queuing the event to its response.
async fn run_archiver(
    context: &Context,
    s3: &S3Server,
    task_id: &str,
    urls: &[String],
    extra: &[(&str, String)],
) -> ArchiveRun {
    let function = Function::start(&context.archiver, "mj-archive-archiver", s3, extra).await;
    let key = format!("{KEY_PREFIX}{task_id}/callback.json");
    s3.put_bytes(
        &key,
        callback_body(task_id, urls).as_bytes(),
        "application/json",
    )
    .await;
    let event = s3_event(&context.events.s3_created, s3.bucket(), &key);

    let host_cpu = cpu_seconds("self", context.ticks);
    let started = Instant::now();
    let outcome = function.api.invoke(event, INVOKE_DEADLINE).await;
    let wall = started.elapsed();
    let host_cpu_seconds = cpu_seconds("self", context.ticks) - host_cpu;

    let summary = match &outcome {
        Invocation::Response(_) => outcome.json(),
        other => panic!("archiver failed: {other:?}\n{}", function.child.output()),
    };
    let task = &summary["archived"][0];
    assert_eq!(
        task["status"],
        "complete",
        "{summary}\n{}",
        function.child.output()
    );
    assert_eq!(
        task["results"].as_u64(),
        Some(urls.len() as u64),
        "{summary}"
    );

    ArchiveRun {
        wall,
        vm_hwm_kib: proc_status_kib(&function.pid(), "VmHWM").unwrap_or(0),
        cpu_seconds: cpu_seconds(&function.pid(), context.ticks),
        host_cpu_seconds,
    }
}

fn generated_urls(origin: &Origin, count: usize, bytes: u64, first_seed: u64) -> Vec<String> {
    (0..count as u64)
        .map(|i| {
            origin.url(&format!(
                "/generated/{bytes}?type=video/mp4&seed={}",
                first_seed + i
            ))
        })
        .collect()
}

/// Shared by every section.
struct Context {
    settings: Settings,
    events: Events,
    receiver: String,
    archiver: String,
    hello: String,
    ticks: f64,
}

// ------------------------------------------------------------------ 1. ack latency

async fn ack_latency(context: &Context, report: &mut Report) {
    let samples = context.settings.ack_samples;
    println!("ack latency: {samples} callbacks through the receiver, the floor and hello_lambda");
    let s3 = S3Server::start().await;
    let receiver = Function::start(&context.receiver, "mj-archive-receiver", &s3, &[]).await;
    let hello = Function::start(&context.hello, "hello-lambda", &s3, &[]).await;
    let client = s3.client();
    let urls: Vec<String> = (0..4)
        .map(|i| format!("https://cdn.example.com/mj/x_0_{i}.jpeg"))
        .collect();

    let mut receiver_ms = Vec::with_capacity(samples);
    let mut floor_ms = Vec::with_capacity(samples);
    let mut hello_ms = Vec::with_capacity(samples);
    let warmup = 20;
    for i in 0..samples + warmup {
        let task_id = format!("bench_ack_{i:06}");
        let body = callback_body(&task_id, &urls);

        let event = receiver_event(&context.events.http_post, &task_id, &body);
        let started = Instant::now();
        let outcome = receiver.api.invoke(event, Duration::from_secs(15)).await;
        let receiver_time = started.elapsed();
        assert_eq!(http_status(&outcome, &receiver.child), 200, "{outcome:?}");

        let started = Instant::now();
        client
            .put_object()
            .bucket(s3.bucket())
            .key(format!("floor/{task_id}/callback.json"))
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .expect("the floor PutObject failed");
        let floor_time = started.elapsed();

        let started = Instant::now();
        let outcome = hello
            .api
            .invoke(context.events.http_get.clone(), Duration::from_secs(15))
            .await;
        let hello_time = started.elapsed();
        assert_eq!(http_status(&outcome, &hello.child), 200, "{outcome:?}");

        if i >= warmup {
            receiver_ms.push(ms(receiver_time));
            floor_ms.push(ms(floor_time));
            hello_ms.push(ms(hello_time));
        }
    }

    let row = |name: &str, values: &[f64]| {
        format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            values.len(),
            quantile(values, 0.5),
            quantile(values, 0.9),
            quantile(values, 0.99),
            values.iter().cloned().fold(0.0, f64::max)
        )
    };
    let receiver_p99 = quantile(&receiver_ms, 0.99);
    let floor_p99 = quantile(&floor_ms, 0.99);
    report.floor_p50_ms = quantile(&floor_ms, 0.5);
    let hello_p99 = quantile(&hello_ms, 0.99);
    let ratio = receiver_p99 / floor_p99;
    report.goal(
        "Ack latency: receiver p99 / PutObject p99",
        "≤ 1.5",
        ratio,
        1.5,
        true,
    );

    report.line("## 1. Ack latency\n");
    report.line(format!(
        "{samples} signed callbacks (distinct task ids, {} byte body) after {warmup} warm-up rounds. \
         Each round sends one callback to the release `receiver` through the Runtime API emulator \
         (time from queuing the event to receiving the function's response), one PutObject of the \
         same body with `If-None-Match: *` from this process (aws-sdk-s3, the floor), and one \
         request to `hello_lambda` through its own emulator (the Runtime API round trip with no \
         work). Times in ms.\n",
        callback_body("bench_ack_000000", &urls).len()
    ));
    report.line("| path | samples | p50 | p90 | p99 | max |");
    report.line("| --- | ---: | ---: | ---: | ---: | ---: |");
    report.line(row("receiver (Runtime API + PutObject)", &receiver_ms));
    report.line(row("floor: PutObject from this process", &floor_ms));
    report.line(row("hello_lambda (Runtime API only)", &hello_ms));
    report.line(format!(
        "\nGoal: receiver p99 ≤ 1.5 × floor p99. Measured {receiver_p99:.3} / {floor_p99:.3} = \
         **{ratio:.2}×**: {}.\n",
        verdict(ratio <= 1.5)
    ));
    report.line(format!(
        "What bounds it: each invocation costs two extra HTTP requests to the Runtime API \
         (`GET /invocation/next` and `POST /invocation/{{id}}/response`), which a PutObject \
         from the same process does not pay. hello_lambda alone takes p50 {:.3} ms, p99 \
         {hello_p99:.3} ms. At p50, floor + hello_lambda is {:.3} ms against the receiver's \
         {:.3} ms, so the receiver's own work (parse, verify the signature, build the request) \
         adds {:+.3} ms. Adding the two p99s gives an estimate of the best ratio a function \
         behind this Runtime API can reach: ({floor_p99:.3} + {hello_p99:.3}) / {floor_p99:.3} \
         = {:.2}×. On Lambda the provider's wait includes the Runtime API hop too, and the \
         function cannot remove it.\n",
        quantile(&hello_ms, 0.5),
        quantile(&floor_ms, 0.5) + quantile(&hello_ms, 0.5),
        quantile(&receiver_ms, 0.5),
        quantile(&receiver_ms, 0.5) - quantile(&floor_ms, 0.5) - quantile(&hello_ms, 0.5),
        (floor_p99 + hello_p99) / floor_p99,
    ));
}

// ------------------------------------------------------------------ 2. cold start and size

struct ColdSample {
    ready_ms: f64,
    response_ms: f64,
    vm_hwm_kib: u64,
}

/// Spawns `binary` with `event` already queued and returns the times from
/// spawn to the first `/invocation/next` and to the first response.
async fn cold_start(
    binary: &str,
    name: &str,
    s3: &S3Server,
    extra: &[(&str, String)],
    event: Value,
    expect_http: bool,
) -> ColdSample {
    let api = RuntimeApi::start().await;
    let env = function_env(name, &api, s3, extra);

    let invoke = async {
        let outcome = api.invoke(event, Duration::from_secs(30)).await;
        (outcome, Instant::now())
    };
    futures::pin_mut!(invoke);
    // Poll once so that the event is queued before the process starts.
    assert!(futures::poll!(invoke.as_mut()).is_pending());

    let spawned = Instant::now();
    let child = ChildGuard::spawn(binary, &[] as &[&str], &env);
    // The emulator counts a delivery when it responds to the first poll.
    while api.delivered() == 0 {
        if spawned.elapsed() > START_TIMEOUT {
            panic!("{name} never polled for events\n{}", child.output());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let ready = spawned.elapsed();
    let (outcome, answered) = invoke.await;

    if expect_http {
        assert_eq!(http_status(&outcome, &child), 200, "{outcome:?}");
    } else {
        assert!(outcome.is_response(), "{outcome:?}\n{}", child.output());
    }
    ColdSample {
        ready_ms: ms(ready),
        response_ms: ms(answered - spawned),
        vm_hwm_kib: proc_status_kib(&child.id().to_string(), "VmHWM").unwrap_or(0),
    }
}

/// Debian's bundle of every trusted root certificate, also read by the default probe.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Returns variables that make rustls-native-certs read only the system
/// bundle file, skipping the per-certificate files in `/etc/ssl/certs`.
fn bundle_only_env(dir: &Path) -> Option<Vec<(&'static str, String)>> {
    let empty_dir = dir.join("no-roots");
    std::fs::create_dir_all(&empty_dir).ok()?;
    Path::new(SYSTEM_BUNDLE).is_file().then(|| {
        vec![
            ("SSL_CERT_FILE", SYSTEM_BUNDLE.to_owned()),
            ("SSL_CERT_DIR", empty_dir.to_string_lossy().into_owned()),
        ]
    })
}

/// Writes the first certificate of the system bundle to `dir/one-root.pem`
/// and returns variables that make rustls-native-certs load only that root.
fn one_root_env(dir: &Path) -> Option<Vec<(&'static str, String)>> {
    let bundle = std::fs::read_to_string(SYSTEM_BUNDLE).ok()?;
    let end = "-----END CERTIFICATE-----";
    let first = &bundle[..bundle.find(end)? + end.len()];
    let file = dir.join("one-root.pem");
    let empty_dir = dir.join("no-roots");
    std::fs::write(&file, format!("{first}\n")).ok()?;
    std::fs::create_dir_all(&empty_dir).ok()?;
    Some(vec![
        ("SSL_CERT_FILE", file.to_string_lossy().into_owned()),
        ("SSL_CERT_DIR", empty_dir.to_string_lossy().into_owned()),
    ])
}

/// Root-certificate reads of one function, from an strace of its start-up
/// and first invocation.
struct RootsTrace {
    cert_opens: usize,
    first_cert_open_ms: Option<f64>,
    cert_span_ms: f64,
    first_api_connect_ms: Option<f64>,
    first_s3_connect_ms: Option<f64>,
}

async fn trace_roots(
    binary: &str,
    name: &str,
    s3: &S3Server,
    event: Value,
    dir: &Path,
) -> Option<RootsTrace> {
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| Path::new(p).is_file())?;
    let api = RuntimeApi::start().await;
    let env = function_env(name, &api, s3, &[]);
    let trace_file = dir.join(format!("{name}.strace"));
    let trace_path = trace_file.to_string_lossy().into_owned();
    let args = [
        "-f",
        "-ttt",
        "-e",
        "trace=openat,connect",
        "-o",
        &trace_path,
        binary,
    ];
    let tracer = ChildGuard::spawn(strace, &args, &env);
    let outcome = api.invoke(event, Duration::from_secs(60)).await;
    assert!(outcome.is_response(), "{outcome:?}\n{}", tracer.output());

    // Stop the traced function itself; strace then exits.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tracer.id()))
        .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    drop(tracer);

    let text = std::fs::read_to_string(&trace_file).ok()?;
    let api_port = api.address().rsplit(':').next().unwrap_or("").to_owned();
    let s3_port = s3.endpoint().rsplit(':').next().unwrap_or("").to_owned();
    let mut start = None;
    let mut cert_times = Vec::new();
    let (mut api_connect, mut s3_connect) = (None, None);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(_pid), Some(time)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(time) = time.parse::<f64>() else {
            continue;
        };
        let start = *start.get_or_insert(time);
        let at = (time - start) * 1000.0;
        if line.contains("openat(") && line.contains("/etc/ssl/certs") && !line.contains("ENOENT") {
            cert_times.push(at);
        }
        if line.contains("connect(") {
            if api_connect.is_none() && line.contains(&format!("htons({api_port})")) {
                api_connect = Some(at);
            }
            if s3_connect.is_none() && line.contains(&format!("htons({s3_port})")) {
                s3_connect = Some(at);
            }
        }
    }
    Some(RootsTrace {
        cert_opens: cert_times.len(),
        first_cert_open_ms: cert_times.first().copied(),
        cert_span_ms: cert_times.last().unwrap_or(&0.0) - cert_times.first().unwrap_or(&0.0),
        first_api_connect_ms: api_connect,
        first_s3_connect_ms: s3_connect,
    })
}

fn zip_size(python: &Path, binary: &str, dir: &Path) -> u64 {
    let name = Path::new(binary).file_name().unwrap().to_string_lossy();
    let zip = dir.join(format!("{name}.zip"));
    let script = "import sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
        \x20   z.write(sys.argv[1], 'bootstrap')\n";
    let status = Command::new(python)
        .args(["-c", script, binary, &zip.to_string_lossy()])
        .status()
        .expect("failed to run python for the zip");
    assert!(status.success(), "zipping {binary} failed");
    std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0)
}

async fn cold_start_and_size(context: &Context, report: &mut Report) {
    let spawns = context.settings.spawns;
    println!("cold start: {spawns} spawns of each function");
    let s3 = S3Server::start().await;
    let scratch = tempfile::tempdir().expect("failed to create a scratch directory");
    let one_root = one_root_env(scratch.path()).unwrap_or_default();
    let bundle_only = bundle_only_env(scratch.path()).unwrap_or_default();
    let ignored_key = format!("{KEY_PREFIX}not-a-callback/readme.txt");
    let archiver_event = s3_event(&context.events.s3_created, s3.bucket(), &ignored_key);

    let names = [
        "hello_lambda",
        "receiver",
        "archiver",
        "receiver, bundle file only",
        "archiver, bundle file only",
        "receiver, one root",
        "archiver, one root",
    ];
    let mut samples: Vec<Vec<ColdSample>> = names.iter().map(|_| Vec::new()).collect();
    for round in 0..spawns {
        let post = |variant: usize| {
            let task_id = format!("bench_cold_{variant}_{round:03}");
            let body = callback_body(&task_id, &["https://cdn.example.com/mj/x.jpeg".into()]);
            receiver_event(&context.events.http_post, &task_id, &body)
        };
        let runs = [
            (
                &context.hello,
                &[][..],
                context.events.http_get.clone(),
                true,
            ),
            (&context.receiver, &[][..], post(1), true),
            (&context.archiver, &[][..], archiver_event.clone(), false),
            (&context.receiver, &bundle_only[..], post(3), true),
            (
                &context.archiver,
                &bundle_only[..],
                archiver_event.clone(),
                false,
            ),
            (&context.receiver, &one_root[..], post(5), true),
            (
                &context.archiver,
                &one_root[..],
                archiver_event.clone(),
                false,
            ),
        ];
        for (index, (binary, extra, event, http)) in runs.into_iter().enumerate() {
            let sample = cold_start(binary, names[index], &s3, extra, event, http).await;
            samples[index].push(sample);
        }
    }

    let ready: Vec<f64> = samples
        .iter()
        .map(|s| median(&s.iter().map(|x| x.ready_ms).collect::<Vec<_>>()))
        .collect();
    let response: Vec<f64> = samples
        .iter()
        .map(|s| median(&s.iter().map(|x| x.response_ms).collect::<Vec<_>>()))
        .collect();
    let hwm: Vec<f64> = samples
        .iter()
        .map(|s| median(&s.iter().map(|x| x.vm_hwm_kib as f64).collect::<Vec<_>>()))
        .collect();

    report.archiver_idle_mib = hwm[2] / 1024.0;
    report.line("## 2. Cold start and size\n");
    report.line(format!(
        "Median of {spawns} fresh processes each, spawned in rounds (one of each per round) with \
         the event already queued. *Ready* is spawn to the first `GET /invocation/next`; \
         *first response* is spawn to the function's response: a 200 for a signed callback \
         (receiver, one PutObject), a summary for an S3 event whose key is not a callback \
         (archiver, no transfer), a 200 for a GET (hello_lambda). Peak RSS (VmHWM) is read \
         after that response. Without `SSL_CERT_FILE` and `SSL_CERT_DIR`, rustls-native-certs \
         reads Debian's bundle `{SYSTEM_BUNDLE}` and then every file in `/etc/ssl/certs`. \
         The *bundle file only* rows set `SSL_CERT_FILE` to the bundle and `SSL_CERT_DIR` to an \
         empty directory (the same roots, one file). The *one root* rows load a file with one \
         CA certificate, so their difference to the plain rows is the whole cost of loading \
         the system's roots.\n"
    ));
    report.line("| function | ready (ms) | first response (ms) | ready / hello | response / hello | peak RSS (MiB) |");
    report.line("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (index, name) in names.iter().enumerate() {
        report.line(format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            ready[index],
            response[index],
            ready[index] / ready[0],
            response[index] / response[0],
            hwm[index] / 1024.0
        ));
    }
    for (index, name) in [(1, "receiver"), (2, "archiver")] {
        report.goal(
            format!("Cold start: {name} ready / hello_lambda"),
            "≤ 2",
            ready[index] / ready[0],
            2.0,
            true,
        );
        report.goal(
            format!("Cold start: {name} first response / hello_lambda"),
            "≤ 2",
            response[index] / response[0],
            2.0,
            true,
        );
    }
    report.line(format!(
        "\nGoal: ≤ 2× hello_lambda. Receiver ready {:.2}×, first response {:.2}×; archiver ready \
         {:.2}×, first response {:.2}×.\n",
        ready[1] / ready[0],
        response[1] / response[0],
        ready[2] / ready[0],
        response[2] / response[0]
    ));
    report.line(format!(
        "What bounds it: loading the system's root certificates at start-up. Medians against \
         the plain rows: reading the bundle file only changes the receiver's ready time by \
         {:+.2} ms and the archiver's by {:+.2} ms; loading one root changes them by {:+.2} ms \
         and {:+.2} ms (negative is faster). With one root the ratios to hello_lambda are \
         {:.2}× and {:.2}× (ready), {:.2}× and {:.2}× (first response). The trace below shows \
         that both functions read the roots before their first poll, and the archiver reads \
         them twice: once for the AWS SDK's HTTPS client and once for reqwest's \
         rustls-platform-verifier. Lambda's provided.al2023 image keeps its roots in other \
         paths, so the cost there may differ from this Debian machine's.\n",
        ready[3] - ready[1],
        ready[4] - ready[2],
        ready[5] - ready[1],
        ready[6] - ready[2],
        ready[5] / ready[0],
        ready[6] / ready[0],
        response[5] / response[0],
        response[6] / response[0],
    ));

    report.line(format!(
        "The receiver's first response also waits for the process's first PutObject: it comes \
         {:.2} ms after the first poll (bundle file only: {:.2} ms, one root: {:.2} ms), where \
         hello_lambda needs {:.2} ms and a warm PutObject from this process takes {:.3} ms at \
         p50 (section 1). That first request opens a connection and runs the SDK's first \
         request set-up, so loading fewer roots alone does not bring the receiver's first \
         response under 2×.\n",
        response[1] - ready[1],
        response[3] - ready[3],
        response[5] - ready[5],
        response[0] - ready[0],
        report.floor_p50_ms,
    ));

    let receiver_post = receiver_event(
        &context.events.http_post,
        "bench_trace_1",
        &callback_body(
            "bench_trace_1",
            &["https://cdn.example.com/mj/x.jpeg".into()],
        ),
    );
    let traces = [
        (
            "receiver",
            trace_roots(
                &context.receiver,
                "receiver",
                &s3,
                receiver_post,
                scratch.path(),
            )
            .await,
        ),
        (
            "archiver",
            trace_roots(
                &context.archiver,
                "archiver",
                &s3,
                archiver_event.clone(),
                scratch.path(),
            )
            .await,
        ),
    ];
    report.line("When the root certificates are read, from `strace -f -ttt -e trace=openat,connect` of one start-up and first invocation (ms since the first traced call; strace slows every call, so only the order is meaningful):\n");
    report.line("| function | files opened under /etc/ssl/certs | first open | span of the opens | first connect to the Runtime API (first poll) | first connect to S3 | roots loaded |");
    report.line("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let fmt = |v: Option<f64>| v.map_or("none".to_owned(), |v| format!("{v:.1}"));
    for (name, trace) in &traces {
        match trace {
            Some(t) => {
                let when = match (t.first_cert_open_ms, t.first_api_connect_ms) {
                    (None, _) => "never (no HTTPS client was built)",
                    (Some(open), Some(api)) if open < api => "at start-up, before the first poll",
                    (Some(_), _) => "lazily, after the first poll",
                };
                report.line(format!(
                    "| {name} | {} | {} | {:.1} | {} | {} | {when} |",
                    t.cert_opens,
                    fmt(t.first_cert_open_ms),
                    t.cert_span_ms,
                    fmt(t.first_api_connect_ms),
                    fmt(t.first_s3_connect_ms)
                ));
            }
            None => report.line(format!("| {name} | strace not available | | | | | |")),
        }
    }

    // Sizes of the zipped bootstraps.
    let python = context.settings.venv_bin.join("python");
    let python = if python.is_file() {
        python
    } else {
        PathBuf::from("python3")
    };
    report.line("\nBootstrap sizes: each release binary (host target x86_64-unknown-linux-gnu, profile `release`) renamed `bootstrap` and zipped with Python's zipfile, deflate level 9.\n");
    report.line("| function | binary (bytes) | zipped (bytes) | zipped / 4 MB |");
    report.line("| --- | ---: | ---: | ---: |");
    for (name, binary) in [
        ("hello_lambda", &context.hello),
        ("receiver", &context.receiver),
        ("archiver", &context.archiver),
    ] {
        let raw = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        let zipped = zip_size(&python, binary, scratch.path());
        let ratio = zipped as f64 / ZIP_GOAL_BYTES as f64;
        report.line(format!("| {name} | {raw} | {zipped} | {ratio:.2} |"));
        if name != "hello_lambda" {
            report.goal(
                format!("Size: {name} zipped / 4 MB"),
                "≤ 1",
                ratio,
                1.0,
                true,
            );
        }
    }
    report.line(
        "\nOnly x86_64 is measured: the machine has no aarch64 Rust target or cross linker, and \
         none can be installed here, so the arm64 zips (`cargo lambda build --release --arm64`) \
         are not built.\n",
    );
}

// ------------------------------------------------------------------ 3. throughput

struct Timed {
    wall: Duration,
    host_cpu_seconds: f64,
}

async fn download_only(urls: &[String], ticks: f64) -> Timed {
    let client = reqwest::Client::new();
    let cpu = cpu_seconds("self", ticks);
    let started = Instant::now();
    let downloads = urls.iter().map(|url| {
        let client = client.clone();
        async move {
            let mut response = client.get(url).send().await.expect("GET failed");
            assert!(
                response.status().is_success(),
                "GET {url}: {}",
                response.status()
            );
            let mut received = 0u64;
            while let Some(chunk) = response.chunk().await.expect("reading the body failed") {
                received += chunk.len() as u64;
            }
            received
        }
    });
    let total: u64 = futures::future::join_all(downloads).await.into_iter().sum();
    assert!(total > 0);
    Timed {
        wall: started.elapsed(),
        host_cpu_seconds: cpu_seconds("self", ticks) - cpu,
    }
}

async fn upload_put(s3: &S3Server, bodies: &[Bytes], run: usize, ticks: f64) -> Timed {
    let client = s3.client();
    let cpu = cpu_seconds("self", ticks);
    let started = Instant::now();
    let uploads = bodies.iter().enumerate().map(|(i, body)| {
        let client = client.clone();
        async move {
            client
                .put_object()
                .bucket(support::s3::BUCKET)
                .key(format!("upload-only/put-{run}/{i}.mp4"))
                .content_type("video/mp4")
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("PutObject failed");
        }
    });
    futures::future::join_all(uploads).await;
    Timed {
        wall: started.elapsed(),
        host_cpu_seconds: cpu_seconds("self", ticks) - cpu,
    }
}

/// Multipart uploads of `bodies` in `part_size` parts with at most
/// `in_flight` UploadPart requests at once across all of them, as the
/// archiver does with its default settings.
async fn upload_multipart(
    s3: &S3Server,
    bodies: &[Bytes],
    part_size: usize,
    in_flight: usize,
    run: usize,
    ticks: f64,
) -> Timed {
    let client = s3.client();
    let cpu = cpu_seconds("self", ticks);
    let started = Instant::now();
    let key = |i: usize| format!("upload-only/multipart-{run}/{i}.mp4");

    let mut upload_ids = Vec::new();
    for i in 0..bodies.len() {
        let created = client
            .create_multipart_upload()
            .bucket(support::s3::BUCKET)
            .key(key(i))
            .content_type("video/mp4")
            .send()
            .await
            .expect("CreateMultipartUpload failed");
        upload_ids.push(created.upload_id.expect("an upload id"));
    }

    let jobs: Vec<(usize, i32, Bytes)> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, body)| {
            (0..body.len())
                .step_by(part_size)
                .enumerate()
                .map(move |(n, start)| {
                    (
                        i,
                        n as i32 + 1,
                        body.slice(start..(start + part_size).min(body.len())),
                    )
                })
        })
        .collect();
    let parts: Vec<(usize, CompletedPart)> = futures::stream::iter(jobs)
        .map(|(i, number, chunk)| {
            let client = client.clone();
            let upload_id = upload_ids[i].clone();
            let key = key(i);
            async move {
                let output = client
                    .upload_part()
                    .bucket(support::s3::BUCKET)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .expect("UploadPart failed");
                let part = CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(output.e_tag)
                    .build();
                (i, part)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;

    let completions = upload_ids.iter().enumerate().map(|(i, upload_id)| {
        let mut mine: Vec<CompletedPart> = parts
            .iter()
            .filter(|(file, _)| *file == i)
            .map(|(_, part)| part.clone())
            .collect();
        mine.sort_by_key(|part| part.part_number());
        let client = client.clone();
        let key = key(i);
        async move {
            client
                .complete_multipart_upload()
                .bucket(support::s3::BUCKET)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(mine))
                        .build(),
                )
                .send()
                .await
                .expect("CompleteMultipartUpload failed");
        }
    });
    futures::future::join_all(completions).await;
    Timed {
        wall: started.elapsed(),
        host_cpu_seconds: cpu_seconds("self", ticks) - cpu,
    }
}

/// Environment for the baseline scripts: PATH with the venv first, S3 variables
/// and an AWS config that selects path-style addressing.
fn script_env(context: &Context, s3: &S3Server, dir: &Path) -> Vec<(String, String)> {
    let config = dir.join("aws-config");
    std::fs::write(&config, "[default]\ns3 =\n    addressing_style = path\n")
        .expect("failed to write the AWS config");
    let mut env: Vec<(String, String)> = s3.env();
    env.retain(|(name, _)| name != "AWS_CONFIG_FILE");
    env.push((
        "AWS_CONFIG_FILE".into(),
        config.to_string_lossy().into_owned(),
    ));
    let path = format!(
        "{}:{}",
        context.settings.venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.push(("PATH".into(), path));
    if let Ok(home) = std::env::var("HOME") {
        env.push(("HOME".into(), home));
    }
    env
}

fn run_script(program: &Path, args: &[String], env: &[(String, String)]) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap_or_else(|err| panic!("failed to run {}: {err}", program.display()));
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (wall, String::from_utf8_lossy(&output.stdout).into_owned())
}

struct PythonRun {
    process_wall: Duration,
    handler_seconds: f64,
    vm_hwm_kib: u64,
}

/// Runs the Python requests + boto3 handler on a stored callback for `urls`.
async fn run_python(
    context: &Context,
    s3: &S3Server,
    task_id: &str,
    urls: &[String],
    dir: &Path,
) -> PythonRun {
    let key = format!("{KEY_PREFIX}{task_id}/callback.json");
    s3.put_bytes(
        &key,
        callback_body(task_id, urls).as_bytes(),
        "application/json",
    )
    .await;
    let event_file = dir.join(format!("{task_id}.json"));
    let event = s3_event(&context.events.s3_created, s3.bucket(), &key);
    std::fs::write(&event_file, event.to_string()).expect("failed to write the event file");

    let handler = context
        .settings
        .repo
        .join("scripts/bench.d/requests_boto3_handler.py");
    let args = [
        handler.to_string_lossy().into_owned(),
        event_file.to_string_lossy().into_owned(),
    ];
    let (process_wall, stdout) = run_script(
        &context.settings.venv_bin.join("python"),
        &args,
        &script_env(context, s3, dir),
    );
    let line = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("unexpected handler output: {stdout}"));
    assert_eq!(
        result["stored"].as_u64(),
        Some(urls.len() as u64),
        "{result}"
    );
    PythonRun {
        process_wall,
        handler_seconds: result["handler_seconds"].as_f64().unwrap_or(0.0),
        vm_hwm_kib: result["vm_hwm_kib"].as_u64().unwrap_or(0),
    }
}

async fn throughput(context: &Context, report: &mut Report) {
    let settings = &context.settings;
    let (count, bytes) = (settings.throughput_results, settings.throughput_bytes);
    let total = count as u64 * bytes;
    println!("throughput: {count} results of {} MiB", bytes / MIB);
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let scratch = tempfile::tempdir().expect("failed to create a scratch directory");
    let ticks = context.ticks;

    let bodies: Vec<Bytes> = (0..count as u64)
        .map(|i| Bytes::from(generated_bytes(bytes, 200 + i)))
        .collect();
    let mut download = Vec::new();
    let mut put = Vec::new();
    let mut multipart = Vec::new();
    let mut archiver = Vec::new();
    for run in 0..settings.repeats {
        let seed = 1000 * (run as u64 + 1);
        download.push(download_only(&generated_urls(&origin, count, bytes, seed), ticks).await);
        put.push(upload_put(&s3, &bodies, run, ticks).await);
        multipart.push(upload_multipart(&s3, &bodies, 8 * MIB as usize, 4, run, ticks).await);
        let urls = generated_urls(&origin, count, bytes, seed + 100);
        archiver
            .push(run_archiver(context, &s3, &format!("bench_throughput_{run}"), &urls, &[]).await);
    }
    drop(bodies);

    let shell_urls = generated_urls(&origin, count, bytes, 50_000);
    let shell_args: Vec<String> =
        std::iter::once(format!("s3://{}/{KEY_PREFIX}bench_shell/", s3.bucket()))
            .chain(shell_urls)
            .collect();
    let (shell_wall, _) = run_script(
        &settings.repo.join("scripts/bench.d/curl-aws-cp.sh"),
        &shell_args,
        &script_env(context, &s3, scratch.path()),
    );
    for i in 0..count {
        let key = format!("{KEY_PREFIX}bench_shell/{i}.mp4");
        let head = s3
            .head(&key)
            .await
            .unwrap_or_else(|| panic!("the shell baseline did not store {key}"));
        assert_eq!(head.content_length, Some(bytes as i64));
    }
    let python = run_python(
        context,
        &s3,
        "bench_python",
        &generated_urls(&origin, count, bytes, 60_000),
        scratch.path(),
    )
    .await;

    let best = |runs: &[Timed]| {
        runs.iter()
            .min_by_key(|t| t.wall)
            .map(|t| (t.wall, t.host_cpu_seconds))
            .unwrap()
    };
    let (download_wall, download_cpu) = best(&download);
    let (put_wall, put_cpu) = best(&put);
    let (multipart_wall, multipart_cpu) = best(&multipart);
    let fastest = archiver.iter().min_by_key(|r| r.wall).unwrap();
    let upload_wall = put_wall.min(multipart_wall);
    let limit = download_wall.max(upload_wall);
    let archiver_wall = fastest.wall;
    let python_wall = Duration::from_secs_f64(python.handler_seconds);
    let rate = |wall: Duration| mib(total) / wall.as_secs_f64();

    report.line("## 3. Throughput\n");
    report.line(format!(
        "{count} results of {} MiB each ({} MiB in all), generated by the loopback origin and \
         stored in the in-process S3 server. Each of the first four rows ran {} time(s) and the \
         fastest run counts. *CPU* is CPU seconds per wall second (this machine has {} cores): \
         the archiver process plus this process (origin and S3 server), or this process alone.\n",
        bytes / MIB,
        total / MIB,
        settings.repeats,
        num_cpus()
    ));
    report.line("| path | wall (s) | MiB/s | CPU | / limit |");
    report.line("| --- | ---: | ---: | ---: | ---: |");
    let limit_s = limit.as_secs_f64();
    let row = |name: &str, wall: Duration, cpu: f64| {
        format!(
            "| {name} | {:.3} | {:.0} | {:.2} | {:.2} |",
            wall.as_secs_f64(),
            rate(wall),
            cpu / wall.as_secs_f64(),
            wall.as_secs_f64() / limit_s
        )
    };
    report.line(row(
        "download only: 4 parallel GETs (reqwest, in this process)",
        download_wall,
        download_cpu,
    ));
    report.line(row(
        "upload only: 4 parallel PutObject from memory",
        put_wall,
        put_cpu,
    ));
    report.line(row(
        "upload only: 4 multipart uploads from memory, 8 MiB parts, 4 in flight",
        multipart_wall,
        multipart_cpu,
    ));
    report.line(row(
        "**archiver** (release binary, invoke to response)",
        archiver_wall,
        fastest.cpu_seconds + fastest.host_cpu_seconds,
    ));
    report.line(format!(
        "| baseline: curl then `aws s3 cp`, one file after another (whole script) | {:.3} | {:.0} | | {:.2} |",
        shell_wall.as_secs_f64(),
        rate(shell_wall),
        shell_wall.as_secs_f64() / limit_s
    ));
    report.line(format!(
        "| baseline: Python requests + boto3 handler (handler only; process {:.3} s) | {:.3} | {:.0} | | {:.2} |",
        python.process_wall.as_secs_f64(),
        python_wall.as_secs_f64(),
        rate(python_wall),
        python_wall.as_secs_f64() / limit_s
    ));

    let archiver_ratio = archiver_wall.as_secs_f64() / limit_s;
    let shell_speedup = shell_wall.as_secs_f64() / archiver_wall.as_secs_f64();
    let python_speedup = python_wall.as_secs_f64() / archiver_wall.as_secs_f64();
    report.goal(
        "Throughput: archiver / limit",
        "≤ 1.25",
        archiver_ratio,
        1.25,
        true,
    );
    report.goal(
        "Throughput: shell baseline / archiver",
        "≥ 2",
        shell_speedup,
        2.0,
        false,
    );
    report.goal(
        "Throughput: Python baseline / archiver",
        "≥ 2",
        python_speedup,
        2.0,
        false,
    );

    report.line(format!(
        "\nThe limit is the slower of download only ({:.3} s) and the faster upload only \
         ({:.3} s): {limit_s:.3} s. Goal: archiver ≤ 1.25 × limit; measured **{archiver_ratio:.2}×**: {}. \
         Goal: ≥ 2× faster than each baseline; measured {shell_speedup:.2}× against the shell \
         script ({}) and {python_speedup:.2}× against the Python handler ({}).\n",
        download_wall.as_secs_f64(),
        upload_wall.as_secs_f64(),
        verdict(archiver_ratio <= 1.25),
        verdict(shell_speedup >= 2.0),
        verdict(python_speedup >= 2.0),
    ));
    let pipeline_cpu = fastest.cpu_seconds + fastest.host_cpu_seconds;
    report.line(format!(
        "What bounds the archiver: the S3 server's handling of the uploads, on the same cores. \
         During its fastest run the archiver process used {:.2} CPU seconds ({:.2} ms per MiB, \
         SHA-256 included) and this process, which runs the origin and the S3 server, {:.2}: \
         {:.2} CPU seconds per wall second on {} cores shared with other work. The upload-only \
         rows show the S3 server alone: a multipart upload of the same bytes from memory, with \
         the archiver's part size and in-flight parts, takes {:.3} s, and the archiver takes \
         {:.2}× that. A result larger than one part (8 MiB) is sent as a multipart upload so \
         that memory stays bounded, so the PutObject row is a limit the archiver does not aim \
         for.\n",
        fastest.cpu_seconds,
        fastest.cpu_seconds * 1000.0 / mib(total),
        fastest.host_cpu_seconds,
        pipeline_cpu / archiver_wall.as_secs_f64(),
        num_cpus(),
        multipart_wall.as_secs_f64(),
        archiver_wall.as_secs_f64() / multipart_wall.as_secs_f64(),
    ));
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ------------------------------------------------------------------ 4. memory

async fn memory(context: &Context, report: &mut Report) {
    let settings = &context.settings;
    let (small, large) = (settings.memory_small_bytes, settings.memory_large_bytes);
    println!(
        "memory: one result of {} MiB and one of {} MiB",
        small / MIB,
        large / MIB
    );
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;
    let scratch = tempfile::tempdir().expect("failed to create a scratch directory");

    let small_run = run_archiver(
        context,
        &s3,
        "bench_memory_small",
        &generated_urls(&origin, 1, small, 7),
        &[],
    )
    .await;
    let large_run = run_archiver(
        context,
        &s3,
        "bench_memory_large",
        &generated_urls(&origin, 1, large, 8),
        &[],
    )
    .await;
    let small_python = run_python(
        context,
        &s3,
        "bench_memory_small_py",
        &generated_urls(&origin, 1, small, 9),
        scratch.path(),
    )
    .await;
    let large_python = run_python(
        context,
        &s3,
        "bench_memory_large_py",
        &generated_urls(&origin, 1, large, 10),
        scratch.path(),
    )
    .await;

    let kib = |v: u64| v as f64 / 1024.0;
    report.line("## 4. Memory\n");
    report.line(
        "Peak RSS (VmHWM from `/proc/PID/status`) of a fresh process that archives one result, \
         read after the invocation completes with the process still alive. The Python handler \
         reports its own VmHWM at the end of its run.\n",
    );
    report.line("| result size | archiver peak RSS (MiB) | archiver wall (s) | Python handler peak RSS (MiB) | Python handler wall (s) |");
    report.line("| --- | ---: | ---: | ---: | ---: |");
    for (size, run, python) in [
        (small, &small_run, &small_python),
        (large, &large_run, &large_python),
    ] {
        report.line(format!(
            "| {} MiB | {:.1} | {:.3} | {:.1} | {:.3} |",
            size / MIB,
            kib(run.vm_hwm_kib),
            run.wall.as_secs_f64(),
            kib(python.vm_hwm_kib),
            python.handler_seconds
        ));
    }
    let absolute = kib(large_run.vm_hwm_kib) / 64.0;
    let flat = large_run.vm_hwm_kib as f64 / small_run.vm_hwm_kib as f64;
    report.goal(
        format!("Memory: archiver peak RSS for {} MiB / 64 MiB", large / MIB),
        "≤ 1",
        absolute,
        1.0,
        true,
    );
    report.goal(
        format!(
            "Memory: peak RSS {} MiB / {} MiB result",
            large / MIB,
            small / MIB
        ),
        "≤ 1.2",
        flat,
        1.2,
        true,
    );
    report.line(format!(
        "\nGoal: ≤ 64 MiB; measured {:.1} MiB for {} MiB (**{absolute:.2}** of the goal): {}. \
         Goal: flat, {} MiB figure ≤ 1.2 × the {} MiB one; measured **{flat:.2}×**: {}. \
         Body memory is bounded by `PART_SIZE_BYTES × MAX_BUFFERED_PARTS`, 32 MiB with the \
         defaults, on top of the process's fixed footprint: {:.1} MiB peak RSS for an \
         archiver that served one event with no transfer (section 2). A result smaller than \
         four parts fills fewer buffers, so the ratio is near 1 only when the smaller result \
         is at least 32 MiB.\n",
        kib(large_run.vm_hwm_kib),
        large / MIB,
        verdict(absolute <= 1.0),
        large / MIB,
        small / MIB,
        verdict(flat <= 1.2),
        report.archiver_idle_mib,
    ));
}

// ------------------------------------------------------------------ 5. scaling

async fn scaling(context: &Context, report: &mut Report) {
    let settings = &context.settings;
    println!("scaling: result counts and the transfer settings sweep");
    let s3 = S3Server::start().await;
    let origin = Origin::start().await;

    report.line("## 5. Scaling\n");
    report.line(format!(
        "Each row is one fresh archiver process (default settings unless named) and one \
         invocation, with results of {} MiB each.\n",
        settings.scaling_bytes / MIB
    ));
    report.line("| results | total (MiB) | wall (s) | MiB/s | peak RSS (MiB) | CPU |");
    report.line("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, &count) in settings.scaling_counts.iter().enumerate() {
        let urls = generated_urls(
            &origin,
            count,
            settings.scaling_bytes,
            70_000 + 100 * i as u64,
        );
        let run = run_archiver(context, &s3, &format!("bench_scaling_{count}"), &urls, &[]).await;
        let total = count as u64 * settings.scaling_bytes;
        report.line(format!(
            "| {count} | {:.0} | {:.3} | {:.0} | {:.1} | {:.2} |",
            mib(total),
            run.wall.as_secs_f64(),
            mib(total) / run.wall.as_secs_f64(),
            run.vm_hwm_kib as f64 / 1024.0,
            (run.cpu_seconds + run.host_cpu_seconds) / run.wall.as_secs_f64()
        ));
    }

    let (count, bytes) = (settings.sweep_results, settings.sweep_bytes);
    report.line(format!(
        "\nTransfer settings: {count} results of {} MiB each per run. *Concurrency* sets both \
         `RESULT_CONCURRENCY` and `MAX_BUFFERED_PARTS`; the buffer bound is part size × \
         buffered parts. The defaults are 8 MiB, 4 and 4.\n",
        bytes / MIB
    ));
    report.line("| part size (MiB) | concurrency | buffer bound (MiB) | wall (s) | MiB/s | peak RSS (MiB) |");
    report.line("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut seed = 80_000;
    let mut rows = Vec::new();
    for &part in &settings.sweep_part_mib {
        for &concurrency in &settings.sweep_concurrency {
            seed += 100;
            let urls = generated_urls(&origin, count, bytes, seed);
            let extra = [
                ("PART_SIZE_BYTES", (part * MIB).to_string()),
                ("RESULT_CONCURRENCY", concurrency.to_string()),
                ("MAX_BUFFERED_PARTS", concurrency.to_string()),
            ];
            let task_id = format!("bench_sweep_{part}_{concurrency}");
            let run = run_archiver(context, &s3, &task_id, &urls, &extra).await;
            let total = count as u64 * bytes;
            let marker = if part == 8 && concurrency == 4 {
                " (default)"
            } else {
                ""
            };
            report.line(format!(
                "| {part}{marker} | {concurrency} | {} | {:.3} | {:.0} | {:.1} |",
                part * concurrency as u64,
                run.wall.as_secs_f64(),
                mib(total) / run.wall.as_secs_f64(),
                run.vm_hwm_kib as f64 / 1024.0
            ));
            rows.push((part, concurrency, run));
        }
    }

    let fastest = rows.iter().min_by_key(|(_, _, run)| run.wall);
    let slowest = rows.iter().max_by_key(|(_, _, run)| run.wall);
    let within_goal = rows
        .iter()
        .filter(|(_, _, run)| run.vm_hwm_kib <= 64 * 1024)
        .count();
    if let (Some((fast_part, fast_c, fast)), Some((_, _, slow))) = (fastest, slowest) {
        report.line(format!(
            "
The fastest setting ({fast_part} MiB, {fast_c}) took {:.3} s and the slowest \
             {:.3} s ({:.2}×), with the S3 server on the same 2 cores. Peak RSS follows \
             the buffer bound. {within_goal} of \
             {} settings stay within the 64 MiB memory goal. Peak RSS above the idle \
             archiver's {:.1} MiB plus the buffer bound: {}.",
            fast.wall.as_secs_f64(),
            slow.wall.as_secs_f64(),
            slow.wall.as_secs_f64() / fast.wall.as_secs_f64(),
            rows.len(),
            report.archiver_idle_mib,
            rows.iter()
                .map(|(part, c, run)| format!(
                    "{part}/{c}: {:+.1} MiB",
                    run.vm_hwm_kib as f64 / 1024.0
                        - report.archiver_idle_mib
                        - (*part * *c as u64) as f64
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    report.line("");
}

// ------------------------------------------------------------------ machine and output

fn machine_section(settings: &Settings, load_before: &str) -> String {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let mut text = String::new();
    let _ = writeln!(text, "## Machine\n");
    let _ = writeln!(text, "| | |\n| --- | --- |");
    let _ = writeln!(
        text,
        "| `nproc` | {} |",
        command_output("nproc", &[]).trim()
    );
    let _ = writeln!(text, "| CPU | {cpu_model} |");
    let _ = writeln!(
        text,
        "| kernel | {} |",
        command_output("uname", &["-r"]).trim()
    );
    let _ = writeln!(
        text,
        "| rustc | {} |",
        command_output("rustc", &["--version"]).trim()
    );
    let _ = writeln!(
        text,
        "| load average before / after the run | {} / {} |",
        load_before,
        load_average()
    );
    let _ = writeln!(
        text,
        "| mode | {} |",
        if settings.quick {
            "quick (`MJ_BENCH_QUICK=1`), smaller sizes"
        } else {
            "full"
        }
    );
    let _ = writeln!(
        text,
        "\n`free -h`:\n\n```\n{}```\n",
        command_output("free", &["-h"])
    );
    text
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn render(settings: &Settings, report: &Report, load_before: &str, elapsed: Duration) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Benchmarks\n");
    let _ = writeln!(
        text,
        "Generated by `scripts/bench` ({}, {:.0} s); rerun it to update this file. Everything \
         runs on 127.0.0.1: the real release `receiver` and `archiver` under a Lambda Runtime \
         API emulator, an in-process S3-compatible server (s3s-fs 0.14.1, SigV4 on, files on \
         the local disk) and an HTTP origin that generates bodies. The machine may be running \
         other work, so each figure is a ratio to a baseline measured in the same run.\n",
        if settings.quick {
            "quick run"
        } else {
            "full run"
        },
        elapsed.as_secs_f64()
    );
    let _ = writeln!(text, "```sh\nscripts/bench                  # full run, about 5 to 15 minutes on 2 cores\nMJ_BENCH_QUICK=1 scripts/bench # smoke run with small sizes\n```\n");
    let _ = writeln!(
        text,
        "`scripts/bench` runs `scripts/install-tools`, `cargo build --release --bins --example \
         hello_lambda`, then `cargo bench --profile bench-harness --bench pipeline` \
         (`benches/pipeline.rs`), which writes this file. Sizes and sample counts are set by the \
         `MJ_BENCH_*` variables listed at the top of `benches/pipeline.rs`.\n"
    );
    let _ = writeln!(text, "## Goals\n");
    let _ = writeln!(
        text,
        "| measure | goal | measured | result |\n| --- | --- | ---: | --- |"
    );
    for goal in &report.goals {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            goal.what,
            goal.goal,
            goal.measured,
            verdict(goal.met)
        );
    }
    text.push('\n');
    text.push_str(&machine_section(settings, load_before));
    text.push_str(&report.sections);
    text
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; this program takes no other arguments.
    let settings = Settings::from_env();
    let load_before = load_average();
    let started = Instant::now();
    let context = Context {
        events: Events::load(&settings.repo),
        receiver: settings.binary("receiver"),
        archiver: settings.binary("archiver"),
        hello: settings.binary("examples/hello_lambda"),
        ticks: clock_ticks(),
        settings,
    };

    let mut report = Report::default();
    ack_latency(&context, &mut report).await;
    cold_start_and_size(&context, &mut report).await;
    throughput(&context, &mut report).await;
    memory(&context, &mut report).await;
    scaling(&context, &mut report).await;

    let text = render(&context.settings, &report, &load_before, started.elapsed());
    std::fs::write(&context.settings.output, &text).unwrap_or_else(|err| {
        panic!(
            "failed to write {}: {err}",
            context.settings.output.display()
        )
    });

    println!("\nwrote {}", context.settings.output.display());
    println!("{:<60} {:>8} {:>8}  result", "measure", "goal", "measured");
    for goal in &report.goals {
        println!(
            "{:<60} {:>8} {:>8}  {}",
            goal.what,
            goal.goal,
            goal.measured,
            if goal.met { "met" } else { "MISSED" }
        );
    }
}
