#!/usr/bin/env bash
# Installs what the end-to-end tests against real upstream programs need:
# RabbitMQ (with its management plugin and rabbitmqadmin), Caddy, aria2 (a
# JSON-RPC admin API) and curl, from Debian; the GraphQL test server's one
# npm package (test/e2e/graphql, pinned in its package-lock.json); and
# Chromium for the web console's browser tests (test/browser). Safe to run
# again: it installs only what is missing.
#
# The tests start their own private instances, so the system services the
# packages may start are stopped and disabled here.
set -euo pipefail

need=()
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v aria2c >/dev/null 2>&1 || need+=(aria2)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install.sh: missing ${need[*]}; run as root to install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${need[@]}"
fi

# The tests own their instances: no system service may hold the ports,
# the Erlang port mapper or the node name.
if [ "$(id -u)" -eq 0 ]; then
	for svc in rabbitmq-server caddy; do
		service "$svc" stop >/dev/null 2>&1 || true
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
	done
	# Processes of the system services, matched by their exact names only.
	for name in epmd beam.smp caddy; do
		for pid in $(pgrep -x "$name" || true); do
			owner=$(ps -o user= -p "$pid" 2>/dev/null || true)
			case "$owner" in
			rabbitmq | caddy) kill "$pid" 2>/dev/null || true ;;
			esac
		done
	done
fi

# rabbitmqadmin ships inside the management plugin; put it on PATH.
if ! command -v rabbitmqadmin >/dev/null 2>&1; then
	admin=$(ls -1d /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*/priv/www/cli/rabbitmqadmin 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -z "$admin" ]; then
		echo "install.sh: rabbitmqadmin not found in the rabbitmq_management plugin" >&2
		exit 1
	fi
	chmod 0755 "$admin"
	ln -sf "$admin" /usr/local/bin/rabbitmqadmin
fi

# The GraphQL admin API the end-to-end tests run (node + graphql from npm).
(cd "$(dirname "$0")/graphql" && npm ci --no-audit --no-fund --silent)

# Real published OpenAPI documents for the tests of `elevate catalog import`:
# the Docker Engine API (Swagger 2.0) and the Ceph dashboard's REST API
# (OpenAPI 3). Each is the one file taken from its Debian package and put
# where the package puts it, without the package's many dependencies: the
# tests only read it.
openapi_doc() { # PACKAGE PATH
	[ -f "$2" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "install.sh: missing $2; run as root to take it from $1" >&2
		exit 1
	fi
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && { apt-get download -q "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "$1" >/dev/null; }; })
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C / ".$2"
	rm -rf "$tmp"
}
openapi_doc golang-github-docker-docker-dev /usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml
openapi_doc ceph-mgr-dashboard /usr/share/ceph/mgr/dashboard/openapi.yaml

echo "rabbitmq-server: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)"
echo "caddy: $(caddy version 2>/dev/null | head -n 1)"
echo "curl: $(curl --version | head -n 1)"
echo "aria2: $(aria2c --version | head -n 1)"
echo "node: $(node --version)"
echo "chromium: $(chromium --version 2>/dev/null | head -n 1)"
echo "rabbitmqadmin: $(command -v rabbitmqadmin) ($(rabbitmqadmin --version 2>&1 | head -n 1))"
"$(dirname "$0")/jaeger.sh" | sed 's/^/jaeger: /'

# kube-apiserver and kubectl for the Kubernetes tests, built from the
# module source once (kubernetes.sh prints only their directory).
kubernetes=$(bash "$(dirname "$0")/kubernetes.sh")
echo "kubernetes: $("$kubernetes/kube-apiserver" --version) ($kubernetes)"
