"""Baseline for scripts/bench: the archiver as a typical Python Lambda handler.

For each record of an S3 event it reads the stored callback.json, then, one
result after another, downloads the whole file with requests (the body is
held in memory, as `response.content` does) and stores it with one boto3
PutObject. This is the code the benchmark compares the Rust archiver with.

Usage: python requests_boto3_handler.py EVENT_FILE

The S3 endpoint and credentials come from the environment
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
It prints one JSON line: the handler's wall time in seconds (client set-up
excluded, as in a warm Lambda), the number of results stored, and the
process's peak resident set size (VmHWM) in KiB.
"""

import json
import os
import sys
import time
import urllib.parse

import boto3
import botocore.config
import requests

EXTENSIONS = {"video/mp4": "mp4", "image/png": "png", "image/jpeg": "jpeg"}

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
    config=botocore.config.Config(s3={"addressing_style": "path"}),
)
http = requests.Session()


def handler(event, context):
    stored = 0
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        prefix = key.rsplit("/", 1)[0] + "/"
        callback = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

        for index, url in enumerate(callback["data"]["resultUrls"]):
            response = http.get(url, timeout=60)
            response.raise_for_status()
            content_type = response.headers.get("Content-Type", "application/octet-stream")
            extension = EXTENSIONS.get(content_type, "bin")
            s3.put_object(
                Bucket=bucket,
                Key=f"{prefix}{index}.{extension}",
                Body=response.content,
                ContentType=content_type,
            )
            stored += 1
    return {"stored": stored}


def peak_rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


if __name__ == "__main__":
    with open(sys.argv[1]) as event_file:
        event = json.load(event_file)
    started = time.monotonic()
    result = handler(event, None)
    elapsed = time.monotonic() - started
    print(json.dumps({"handler_seconds": elapsed, "stored": result["stored"], "vm_hwm_kib": peak_rss_kib()}))
