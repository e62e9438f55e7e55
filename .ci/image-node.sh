#!/usr/bin/env bash
# Prints the bin directory of the Node.js the image runs (Dockerfile: node:22-bookworm-slim),
# fetched once from the npm registry (package node-linux-<arch>, checked against the
# registry's integrity by npm) and cached, so CI can run the tests on it as well as on the
# machine's Node.js. Fails when the Dockerfile names another major version: bump both together.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=22.23.5
image_major="$(sed -n 's/^ARG NODE_IMAGE=node:\([0-9]*\)[-.@].*/\1/p' Dockerfile)"
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
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-$arch@$version" >/dev/null && tar xzf ./*.tgz)
  "$work/package/bin/node" --version >/dev/null
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache.tmp" && mv "$work/package" "$cache.tmp" && rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
echo "$cache/bin"
