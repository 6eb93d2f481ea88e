"""File and S3 steps of scripts/local-run: build its inputs, check its outputs.

Runs with the repository's .venv Python, which has boto3. The S3 endpoint,
credentials and region come from the environment that local-run sets
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).

Subcommands:
  callback-body TEMPLATE ORIGIN SOURCES OUTPUT
      Copy the provider callback body, pointing every result URL at ORIGIN,
      and check that ORIGIN serves each URL as the file of that name in
      SOURCES with the expected Content-Type.
  s3-event TEMPLATE BUCKET KEY OUTPUT
      Write an S3 ObjectCreated:Put event for the stored object BUCKET/KEY,
      with its real size and ETag.
  field FILE NAME
      Print one top-level field of a JSON file (empty when it is missing).
  verify BUCKET PREFIX TASK_ID BODY SOURCES
      Check everything the archiver wrote for TASK_ID against the callback
      BODY that was posted and the original images in SOURCES; print a table.
"""

import datetime
import hashlib
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import botocore.config

# Content-Type and key extension that the archiver must record for each
# source file extension.
EXPECTED_TYPES = {
    ".png": ("image/png", "png"),
    ".jpeg": ("image/jpeg", "jpeg"),
    ".webp": ("image/webp", "webp"),
    ".gif": ("image/gif", "gif"),
}


def s3_client():
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def callback_body(template: str, origin: str, sources: str, output: str) -> int:
    body = json.loads(Path(template).read_text())
    origin_parts = urllib.parse.urlsplit(origin)
    urls = body["data"]["resultUrls"]
    for i, url in enumerate(urls):
        parts = urllib.parse.urlsplit(url)
        urls[i] = urllib.parse.urlunsplit(
            (origin_parts.scheme, origin_parts.netloc, parts.path, parts.query, parts.fragment)
        )
    Path(output).write_text(json.dumps(body, indent=2) + "\n")

    # The origin is on 127.0.0.1, so no proxy from the environment may apply.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    failed = False
    for url in urls:
        source = Path(sources) / Path(urllib.parse.urlsplit(url).path).name
        content_type, _ = EXPECTED_TYPES[source.suffix]
        try:
            with opener.open(url, timeout=10) as response:
                status, served_type, data = response.status, response.headers.get("Content-Type"), response.read()
        except OSError as err:
            status, served_type, data = str(err), None, b""
        ok = status == 200 and served_type == content_type and data == source.read_bytes()
        failed = failed or not ok
        print(f"{'ok' if ok else 'FAILED'}  {status} {served_type}  {len(data)} bytes  {url}")
    if failed:
        print(f"expected from {origin}: status 200, the Content-Type of the extension, the bytes of {sources}")
        return 1
    return 0


def s3_event(template: str, bucket: str, key: str, output: str) -> None:
    head = s3_client().head_object(Bucket=bucket, Key=key)
    event = json.loads(Path(template).read_text())
    record = event["Records"][0]
    now = datetime.datetime.now(datetime.timezone.utc)
    record["eventTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    # S3 sends keys URL-encoded in form style: a space becomes "+".
    record["s3"]["object"]["key"] = urllib.parse.quote_plus(key, safe="/")
    record["s3"]["object"]["size"] = head["ContentLength"]
    record["s3"]["object"]["eTag"] = head["ETag"].strip('"')
    Path(output).write_text(json.dumps(event, indent=2) + "\n")


def field(path: str, name: str) -> None:
    try:
        value = json.loads(Path(path).read_text()).get(name, "")
    except (OSError, ValueError, AttributeError):
        value = ""
    print(value if isinstance(value, str) else json.dumps(value))


def verify(bucket: str, prefix: str, task_id: str, body_path: str, sources: str) -> int:
    client = s3_client()
    task_dir = f"{prefix}{task_id}/"
    failures = []

    def check(condition: bool, message: str) -> bool:
        if not condition:
            failures.append(message)
        return condition

    def read(key: str):
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            print(f"object {key} not found in bucket {bucket}", file=sys.stderr)
            return None

    posted = Path(body_path).read_bytes()
    stored = read(f"{task_dir}callback.json")
    manifest_bytes = read(f"{task_dir}manifest.json")
    if stored is None or manifest_bytes is None:
        return 1
    check(stored == posted, f"{task_dir}callback.json differs from the posted body")

    manifest = json.loads(manifest_bytes)
    check(manifest.get("task_id") == task_id, f"manifest task_id is {manifest.get('task_id')!r}, expected {task_id!r}")
    check(manifest.get("status") == "complete", f"manifest status is {manifest.get('status')!r}, expected 'complete'")

    source_urls = json.loads(posted)["data"]["resultUrls"]
    results = manifest.get("results") or []
    check(
        len(results) == len(source_urls),
        f"manifest lists {len(results)} results, the callback has {len(source_urls)} result URLs",
    )

    rows = []
    expected_keys = {f"{task_dir}callback.json", f"{task_dir}manifest.json"}
    for index, url in enumerate(source_urls):
        source = Path(sources) / Path(urllib.parse.urlsplit(url).path).name
        content_type, ext = EXPECTED_TYPES[source.suffix]
        source_bytes = source.read_bytes()
        source_sha = sha256_hex(source_bytes)
        key = f"{task_dir}{index}.{ext}"
        expected_keys.add(key)
        entry = next((r for r in results if r.get("index") == index), {})
        label = f"result {index} ({source.name})"
        failed_before = len(failures)

        if entry.get("error") is not None:
            error = entry["error"]
            check(False, f"{label}: the archiver recorded {error.get('kind')}: {error.get('message')}")
            rows.append((str(index), key, "-", "-", "-", "FAILED"))
            continue
        check(entry.get("source_url") == url, f"{label}: manifest source_url is {entry.get('source_url')!r}")
        check(entry.get("key") == key, f"{label}: manifest key is {entry.get('key')!r}, expected {key!r}")
        check(
            entry.get("content_type") == content_type,
            f"{label}: manifest content_type is {entry.get('content_type')!r}, expected {content_type!r}",
        )
        check(entry.get("bytes") == len(source_bytes), f"{label}: manifest bytes is {entry.get('bytes')}, source has {len(source_bytes)}")
        check(entry.get("sha256") == source_sha, f"{label}: manifest sha256 differs from the source file's")

        stored_type, stored_size, stored_sha = "-", "-", "-"
        try:
            obj = client.get_object(Bucket=bucket, Key=key)
        except client.exceptions.NoSuchKey:
            check(False, f"{label}: object {key} not found")
        else:
            data = obj["Body"].read()
            stored_type, stored_size, stored_sha = obj.get("ContentType"), len(data), sha256_hex(data)
            check(stored_sha == source_sha, f"{label}: stored object {key} is not byte-identical to {source}")
            check(stored_type == content_type, f"{label}: stored object Content-Type is {stored_type!r}, expected {content_type!r}")

        verdict = "ok" if len(failures) == failed_before else "FAILED"
        rows.append((str(index), key, str(stored_size), str(stored_type), stored_sha[:16], verdict))

    listing = client.list_objects_v2(Bucket=bucket, Prefix=task_dir)
    present = {item["Key"] for item in listing.get("Contents", [])}
    check(not (present - expected_keys), f"unexpected objects under {task_dir}: {sorted(present - expected_keys)}")

    header = ("index", "key", "bytes", "content type", "sha256 (prefix)", "check")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    if failures:
        print(f"\n{len(failures)} check(s) failed:", file=sys.stderr)
        for message in failures:
            print(f"  - {message}", file=sys.stderr)
        return 1
    print(f"\n  all {len(rows)} results match their sources byte for byte; manifest status is complete")
    return 0


def main() -> int:
    commands = {
        "callback-body": (callback_body, 4),
        "s3-event": (s3_event, 4),
        "field": (field, 2),
        "verify": (verify, 5),
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    function, arity = commands[sys.argv[1]]
    args = sys.argv[2:]
    if len(args) != arity:
        print(f"{sys.argv[1]} takes {arity} arguments, got {len(args)}\n{__doc__}", file=sys.stderr)
        return 2
    return function(*args) or 0


if __name__ == "__main__":
    sys.exit(main())
