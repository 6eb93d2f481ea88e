#!/usr/bin/env bash
# Baseline for scripts/bench: archive result URLs the way a shell script
# does it today. Each URL is downloaded whole to a temporary file with curl,
# then copied to S3 with `aws s3 cp`, one after the other.
#
# Usage: curl-aws-cp.sh S3_PREFIX URL...
#   S3_PREFIX  s3://BUCKET/PREFIX/ ; result i goes to S3_PREFIX{i}.mp4
# The S3 endpoint and credentials come from the environment
# (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION);
# `aws` must be on PATH.
set -euo pipefail

destination="$1"
shift

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

index=0
for url in "$@"; do
  curl --silent --show-error --fail --output "$workdir/$index" "$url"
  aws s3 cp "$workdir/$index" "${destination}${index}.mp4" \
    --endpoint-url "$AWS_ENDPOINT_URL_S3" --content-type video/mp4 --only-show-errors
  rm -f "$workdir/$index"
  index=$((index + 1))
done
