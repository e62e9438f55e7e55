#!/usr/bin/env bash
# Makes sure the kube-apiserver and etcd binaries are built and cached before `npm test`,
# so the build (4–15 minutes when cold) is not charged to the test run's setup.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
bin_dir="$(bash scripts/control-plane/build.sh | tail -n 1)"
echo "control plane binaries ready in $(($(date +%s) - started))s: $bin_dir"
