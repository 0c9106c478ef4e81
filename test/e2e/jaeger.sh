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

. "$(dirname "$0")/gomodule.sh"
bin=$cache/jaeger-$version

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

gomodule_source jaeger.sh "$module" "$version"
echo "jaeger.sh: building $module@$version/cmd/jaeger (several minutes)" >&2
(cd "$work/src" && go build -trimpath -o "$cache_tmp" ./cmd/jaeger)
mv -f "$cache_tmp" "$bin"
echo "$bin"
