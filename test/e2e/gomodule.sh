# Shared by the scripts that build a program from its Go module source
# (jaeger.sh, kubernetes.sh); sourced, not run. After `gomodule_source NAME
# MODULE VERSION`, $work holds a writable copy of the module's source in
# $work/src (removed at exit, with $cache_tmp), and $cache is where built
# programs are kept: ${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}.

cache=${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}
work=
cache_tmp=

gomodule_cleanup() {
	if [ -n "$work" ]; then
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
	if [ -n "$cache_tmp" ]; then
		rm -rf "$cache_tmp"
	fi
}

# gomodule_source NAME MODULE VERSION fetches MODULE@VERSION through the Go
# module proxy and copies it out of the read-only module cache into
# $work/src. NAME names the calling script in messages. It also sets
# cache_tmp, a path in $cache to build into before moving the result to its
# final place, so that an interrupted build never leaves a program there.
gomodule_source() {
	local name=$1 module=$2 version=$3 tool dir
	for tool in go python3; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "$name: $tool is required to build $module" >&2
			exit 1
		fi
	done
	mkdir -p "$cache"
	work=$(mktemp -d "${TMPDIR:-/tmp}/elevate-$name.XXXXXX")
	cache_tmp=$cache/.$name-$version.$$
	trap gomodule_cleanup EXIT

	# Outside any module or workspace: the download and the build must not
	# pick up the repository's go.mod or a go.work.
	export GOWORK=off
	echo "$name: fetching $module@$version" >&2
	dir=$(cd "$work" && go mod download -json "$module@$version" | python3 -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error") or not info.get("Dir"):
    sys.exit("go mod download: " + (info.get("Error") or "no module directory"))
print(info["Dir"])
')
	cp -R "$dir" "$work/src"
	chmod -R u+w "$work/src"
}
