#!/usr/bin/env bash
# Builds kube-apiserver and etcd from Go modules (the wrapper modules next to this
# script) into a cache directory, unless that directory already holds them.
#
#   bash scripts/control-plane/build.sh            # builds if needed
#   bash scripts/control-plane/build.sh --print    # prints the cache dir, never builds
#
# Progress goes to stderr; the last line of stdout is the directory holding the
# binaries. The cache key is the versions plus a hash of the wrapper modules, so
# editing a go.mod, go.sum or main.go rebuilds.
#
# Environment:
#   PUSHGATE_CONTROL_PLANE_CACHE  cache root (default ${XDG_CACHE_HOME:-~/.cache}/pushgate/control-plane)
#   SOURCE_DATE_EPOCH             buildDate stamped into the binary (default: the module's release time)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

k8s_version="v1.34.2"
etcd_version="v3.6.16"
# Part of the cache key: bump it when a change to this script (flags, ldflags) changes
# the binaries, so caches built by the old recipe are not reused.
recipe=1

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

wrapper_hash() {
  (cd "$here" && echo "recipe $recipe" && cat kube-apiserver/go.mod kube-apiserver/go.sum kube-apiserver/main.go \
    etcd/go.mod etcd/go.sum etcd/main.go) | sha256sum | cut -c1-12
}

cache_root="${PUSHGATE_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pushgate/control-plane}"
key="${k8s_version}-etcd${etcd_version#v}-$(wrapper_hash)"
out="$cache_root/$key"

is_built() { [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; }

if [[ "${1:-}" == "--print" ]]; then
  echo "$out"
  exit 0
fi

if is_built; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]] || die "go is not installed"
command -v go >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"

# The versions in this script must match the wrapper modules, or the cache key lies.
grep -q "k8s.io/kubernetes $k8s_version\$" "$here/kube-apiserver/go.mod" \
  || die "kube-apiserver/go.mod does not require k8s.io/kubernetes $k8s_version"
grep -q "go.etcd.io/etcd/server/v3 $etcd_version\$" "$here/etcd/go.mod" \
  || die "etcd/go.mod does not require go.etcd.io/etcd/server/v3 $etcd_version"

mkdir -p "$cache_root"
# One build at a time: `npm test`, `npm run cluster` and CI may all ask at once.
exec 9>"$cache_root/.build.lock"
log "waiting for the build lock ($cache_root/.build.lock)"
flock 9
if is_built; then
  log "built by another process: $out"
  echo "$out"
  exit 0
fi

staging="$(mktemp -d "$cache_root/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
  build_date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
else
  build_date="$(cd "$here/kube-apiserver" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
fi

k8s_minor="${k8s_version#v1.}"
k8s_minor="${k8s_minor%%.*}"
# Upstream's hack/lib/version.sh stamps both packages; /version reads component-base's,
# client-go's feeds the User-Agent of the server's loopback clients. The upstream git
# commit is not part of a module download, so gitCommit stays empty.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version"
  ldflags+=" -X $pkg.gitMajor=1"
  ldflags+=" -X $pkg.gitMinor=$k8s_minor"
  ldflags+=" -X $pkg.gitCommit="
  ldflags+=" -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$build_date"
done

export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
jobs="${PUSHGATE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

start=$SECONDS
log "building etcd $etcd_version"
(cd "$here/etcd" && go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$staging/etcd" .)
log "etcd built in $((SECONDS - start))s"

start=$SECONDS
log "building kube-apiserver $k8s_version (slow the first time: ~10-25 min on 2 cores)"
(cd "$here/kube-apiserver" && go build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$staging/kube-apiserver" .)
log "kube-apiserver built in $((SECONDS - start))s"

"$staging/etcd" --version >&2
"$staging/kube-apiserver" --version >&2

# Publish the finished directory in one rename so a reader never sees half a cache.
chmod 0755 "$staging"
mv -T "$staging" "$out"
trap - EXIT
log "cached: $out"
echo "$out"
