#!/usr/bin/env bash
# `make bench`: elevate measured against what a team would run instead.
#
# Installs what is missing (nginx, njs and wrk from Debian; OPA built with
# `go install` into a cache outside the repository), builds elevate and the
# harness (bench/driver), and runs `driver run`, which starts everything on
# loopback, measures, stops everything it started, and writes
# bench/results/latest.md (also printed). See docs/performance.md.
#
#   BENCH_QUICK=1  short runs and few trials: checks the harness end to end
#                  in about two minutes; the figures are not for comparison.
#   BENCH_KEEP=1   keep the work directory (configs, logs, audit logs).
#   BENCH_THROUGHPUT_ONLY=1  the throughput section only.
#   BENCH_KUBERNETES_ONLY=1  `kubectl get pods` directly and through elevate
#                  only (no nginx, wrk or OPA needed).
#
# kube-apiserver and kubectl come from test/e2e/kubernetes.sh, which builds
# them once (minutes) and keeps them in the same cache.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
opa_version=v1.22.2
opa_module=github.com/open-policy-agent/opa
cache=${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}
opa=$cache/opa-$opa_version/opa

log() { echo "bench: $*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/elevate-bench-setup.XXXXXX")
driver_pid=
cleanup() {
	if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
		kill -TERM "$driver_pid" 2>/dev/null || true
		wait "$driver_pid" 2>/dev/null || true
	fi
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kubernetes_only=${BENCH_KUBERNETES_ONLY:-0}
throughput_only=${BENCH_THROUGHPUT_ONLY:-0}

# Debian packages, installed only when missing; the package lists are
# updated once, and only then. The kubectl measurement needs none.
need=()
if [ "$kubernetes_only" != 1 ]; then
	command -v nginx >/dev/null 2>&1 || need+=(nginx)
	[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || need+=(libnginx-mod-http-js)
	command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
if [ ${#need[@]} -gt 0 ]; then
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	nginx_before=$(pgrep -x nginx || true)
	log "installing ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
	# The package may start a system nginx on port 80; the benchmark runs
	# its own, so stop one that the installation started.
	if [ -z "$nginx_before" ] && pgrep -x nginx >/dev/null 2>&1; then
		$sudo nginx -s quit 2>/dev/null || true
	fi
fi

# OPA, built once and kept outside the repository. Outside any module or
# workspace: the build must not pick up the repository's go.mod.
if [ "$kubernetes_only" != 1 ] && [ ! -x "$opa" ]; then
	mkdir -p "$(dirname "$opa")"
	log "building OPA $opa_version (about two minutes, once)"
	if ! (cd "$tmp" && GOWORK=off GOBIN="$tmp/bin" go install "$opa_module@$opa_version" >&2); then
		# Should go install refuse the module, build it from its source
		# as test/e2e/jaeger.sh builds Jaeger.
		log "go install refused $opa_module; building from the module source"
		dir=$(cd "$tmp" && GOWORK=off go mod download -json "$opa_module@$opa_version" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
		cp -R "$dir" "$tmp/src"
		chmod -R u+w "$tmp/src"
		(cd "$tmp/src" && GOWORK=off go build -trimpath -o "$tmp/bin/opa" . >&2)
	fi
	mv -f "$tmp/bin/opa" "$opa"
fi

# kube-apiserver and kubectl, built once by the end-to-end tests' script.
kube_dir=
if [ "$throughput_only" != 1 ]; then
	log "kube-apiserver and kubectl (test/e2e/kubernetes.sh; a first build takes minutes)"
	kube_dir=$(test/e2e/kubernetes.sh)
fi

log "building elevate and the harness"
go build -o bin/elevate ./cmd/elevate
go build -o bin/elevate-bench ./bench/driver

args=(run --repo "$repo" --elevate bin/elevate --opa "$opa" --out bench/results/latest.md)
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
[ "${BENCH_KEEP:-0}" = 1 ] && args+=(--keep-work)
[ "$throughput_only" = 1 ] && args+=(--throughput-only)
[ -n "$kube_dir" ] && args+=(--kubernetes "$kube_dir")
[ "$kubernetes_only" = 1 ] && args+=(--kubernetes-only)
# In the background so that the traps above can stop it; it stops what it
# started itself.
bin/elevate-bench "${args[@]}" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=
exit "$status"
