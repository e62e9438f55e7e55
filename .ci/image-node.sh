#!/usr/bin/env bash
# Prints the bin directory of a Node.js of the major version the image runs (the Dockerfile's
# node:24-bookworm-slim follows the newest 24.x; this pins one), fetched once from the npm
# registry (package node-linux-<arch>, checked against the registry's integrity by npm) and
# cached, so CI runs the tests on it as well as on the machine's Node.js. Fails when the
# Dockerfile names another major version: bump both together.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=24.22.3
image_major="$(sed -n 's/^ARG NODE_IMAGE=node:\([0-9]*\)\([-.@].*\)\{0,1\}$/\1/p' Dockerfile)"
if [ "$image_major" != "${version%%.*}" ]; then
  echo "image-node: the Dockerfile runs Node.js ${image_major:-?}, this script fetches $version: update one of them" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "image-node: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac

cache="${XDG_CACHE_HOME:-$HOME/.cache}/pushgate/node/$version-$arch"
if [ ! -x "$cache/bin/node" ]; then
  mkdir -p "$(dirname "$cache")"
  # One fetch at a time; a run that waited finds the cache made.
  exec 9>"$cache.lock"
  flock 9
  if [ ! -x "$cache/bin/node" ]; then
    # Unpacked beside the cache (same file system), renamed into place only once complete.
    work="$(mktemp -d "$cache.tmp.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "node-linux-$arch@$version" >/dev/null && tar xzf ./*.tgz)
    "$work/package/bin/node" --version >/dev/null
    rm -rf "$cache"
    mv "$work/package" "$cache"
  fi
fi
echo "$cache/bin"
