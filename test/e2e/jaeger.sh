#!/usr/bin/env bash
# Builds the Jaeger binary the end-to-end tests run, once, and prints its path.
#
# Jaeger is not packaged in Debian and `go install` refuses its module (it has
# replace directives), so the module source is fetched through the Go module
# proxy, copied out of the read-only module cache and built there. The binary
# is kept outside the repository, in
#   ${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}/jaeger-VERSION
# and rebuilt only when it is missing. Build output goes to stderr; stdout
# carries only the path.
set -euo pipefail

version=v1.76.0
module=github.com/jaegertracing/jaeger

cache=${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}
bin=$cache/jaeger-$version

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

for tool in go python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "jaeger.sh: $tool is required to build Jaeger" >&2
		exit 1
	fi
done

mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/elevate-jaeger.XXXXXX")
tmpbin=$cache/.jaeger-$version.$$
cleanup() {
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work" "$tmpbin"
}
trap cleanup EXIT

# Outside any module or workspace: the download and the build must not pick
# up the repository's go.mod or a go.work.
export GOWORK=off
echo "jaeger.sh: fetching $module@$version" >&2
dir=$(cd "$work" && go mod download -json "$module@$version" | python3 -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error") or not info.get("Dir"):
    sys.exit("go mod download: " + (info.get("Error") or "no module directory"))
print(info["Dir"])
')

# The module cache is read-only; build in a writable copy.
cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"

echo "jaeger.sh: building $module@$version/cmd/jaeger (several minutes)" >&2
(cd "$work/src" && go build -trimpath -o "$tmpbin" ./cmd/jaeger)
# An interrupted build never leaves a binary at the final path.
mv -f "$tmpbin" "$bin"
echo "$bin"
