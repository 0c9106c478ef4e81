#!/usr/bin/env bash
# Builds the kube-apiserver and kubectl that the Kubernetes end-to-end tests
# run, once, and prints the directory that holds both.
#
# Neither is packaged in Debian at a current version (Debian's kubectl is
# old enough to warn about version skew), so the k8s.io/kubernetes module
# source is fetched through the Go module proxy, copied out of the
# read-only module cache, its staging replace directives pointed at the
# published k8s.io modules of the same release, and built there. The
# binaries are kept outside the repository, in
#   ${ELEVATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elevate}/kubernetes-VERSION/
# and rebuilt only when missing. A cold build takes about 6 minutes and
# 3 GB of build cache on 2 cores. Build output goes to stderr; stdout
# carries only the directory.
set -euo pipefail

version=v1.37.2
staging=v0.${version#v1.}
module=k8s.io/kubernetes

. "$(dirname "$0")/gomodule.sh"
out=$cache/kubernetes-$version

if [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ]; then
	echo "$out"
	exit 0
fi

gomodule_source kubernetes.sh "$module" "$version"

# The module's go.mod replaces each k8s.io/X with ./staging/src/k8s.io/X,
# which the published module does not carry: use the published k8s.io/X at
# the release's staging version instead, and drop the replaces of the two
# sample modules, which nothing built here needs.
python3 - "$work/src/go.mod" "$staging" <<'EOF'
import re, sys
path, staging = sys.argv[1], sys.argv[2]
text = open(path).read()
def fix(m):
    mod = m.group(1)
    if mod in ("k8s.io/sample-cli-plugin", "k8s.io/sample-controller"):
        return ""
    return "\t%s => %s %s\n" % (mod, mod, staging)
text = re.sub(r"^\s*(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/\S+\s*\n", fix, text, flags=re.M)
text = re.sub(r"^replace (k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/\S+\s*$",
              lambda m: "" if m.group(1) in ("k8s.io/sample-cli-plugin", "k8s.io/sample-controller")
              else "replace %s => %s %s" % (m.group(1), m.group(1), staging), text, flags=re.M)
if "./staging/" in text:
    sys.exit("kubernetes.sh: a staging replace is left in go.mod")
open(path, "w").write(text)
EOF

ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version"
mkdir -p "$cache_tmp"
for cmd in kube-apiserver kubectl; do
	echo "kubernetes.sh: building $module@$version/cmd/$cmd (several minutes)" >&2
	(cd "$work/src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$cache_tmp/$cmd" "./cmd/$cmd")
done
rm -rf "$out"
mv "$cache_tmp" "$out"
echo "$out"
