#!/usr/bin/env bash
# Installs the peer filesystems the benchmark compares against (Debian packages).
set -euo pipefail
missing=()
for tool in rclone s3fs sshfs; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
