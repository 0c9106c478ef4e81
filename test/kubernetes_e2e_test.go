//go:build e2e

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kubeThroughElevate is a real kube-apiserver behind `elevate serve --dev`
// as the kubernetes upstream "prod", and the kubeconfigs of people who
// reach it through elevate with kubectl, each written by `elevate
// kubeconfig` with its exec credential plugin.
type kubeThroughElevate struct {
	t    *testing.T
	kc   *kubeCluster
	s    *server
	home string // HOME of the kubectl runs
	// proxyCA is the PEM file of the CA of the proxy listener's certificate.
	proxyCA string
}

func startKubeThroughElevate(t *testing.T) *kubeThroughElevate {
	t.Helper()
	kc := startKubernetes(t)
	// kubectl sends credentials only over TLS: the proxy listener serves
	// a certificate of a CA the kubeconfigs trust.
	dir := t.TempDir()
	ca := newPKI(t, "elevate-test-ca")
	certFile, keyFile := ca.pairFiles(t, dir, "proxy", 0)
	cfg := filepath.Join(dir, "kubernetes.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
proxy:
  tls_cert_file: %s
  tls_key_file: %s
upstreams:
  - name: prod
    type: kubernetes
    url: %s
    ca_file: %s
    prefix: /kubernetes/prod/
    credential: {type: bearer, value_file: %s}
    kubernetes:
      groups: [operators]
`, certFile, keyFile, kc.URL, kc.CAFile, kc.ElevateTokenFile)), 0o600))
	s := startDev(t, "--config", cfg)
	k := &kubeThroughElevate{t: t, kc: kc, s: s, home: t.TempDir(), proxyCA: ca.pemFile}
	return k
}

// kubeconfig writes, with `elevate kubeconfig`, the kubeconfig of a person
// whose dev token the exec plugin mints, and returns its path.
func (k *kubeThroughElevate) kubeconfig(subject string, groups ...string) string {
	k.t.Helper()
	file := filepath.Join(k.home, subject+".kubeconfig")
	args := []string{"kubeconfig", "--upstream", "prod", "--kubeconfig", file, "--dev-subject", subject, "--data-dir", k.s.dataDir,
		"--proxy-ca-file", k.proxyCA}
	if len(groups) > 0 {
		args = append(args, "--dev-groups", strings.Join(groups, ","))
	}
	out := k.s.ok(k.s.token("--sub", "ada", "--groups", "admins,approvers"), args...)
	require.Contains(k.t, out, "elevate-prod")
	return file
}

// kubectl runs kubectl with kubeconfig through elevate.
func (k *kubeThroughElevate) kubectl(kubeconfig string, args ...string) result {
	k.t.Helper()
	return k.kc.kubectl(k.t, kubeconfig, args...)
}

// TestKubernetesThroughElevate: kubectl, configured by `elevate
// kubeconfig`, reaches a real API server through elevate: reads pass;
// a delete in prod is refused with a Status naming the request command,
// passes under a grant scoped to prod, stays refused in staging, and is
// refused again once the grant ends; exec is judged as its own task;
// --as and --as-group gain nothing; RBAC still applies to the person.
func TestKubernetesThroughElevate(t *testing.T) {
	k := startKubeThroughElevate(t)
	s := k.s
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "create", "--task", `Kubernetes\delete pods`, "--approval", "manual", "--require-scope", "namespace")
	s.ok(admin, "policy", "create", "--task", `Kubernetes\exec pods`, "--approval", "manual")
	alice := s.token("--sub", "alice")
	aliceCfg := k.kubeconfig("alice")

	// Reads pass.
	out := k.kc.kubectlOK(t, aliceCfg, "get", "pods", "-n", "prod", "-o", "name")
	require.Contains(t, out, "pod/web")

	// A delete is refused with the command that asks for it.
	r := k.kubectl(aliceCfg, "delete", "pod", "web", "-n", "prod")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "Error from server (Forbidden)")
	require.Contains(t, r.stderr, `elevate request new --task 'Kubernetes\delete pods' --namespace prod`)

	// The policy requires a namespace; a request scoped to prod passes.
	bad := s.cli(alice, "request", "new", "--task", `Kubernetes\delete pods`, "--reason", "clean up")
	require.NotEqual(t, 0, bad.code)
	require.Contains(t, bad.stderr, "--namespace")
	id := s.request(alice, "--task", `Kubernetes\delete pods`, "--namespace", "prod", "--reason", "remove the stuck pod")
	shown := s.ok(alice, "request", "get", id)
	require.Contains(t, shown, "namespace=prod")
	s.ok(admin, "request", "approve", id, "--comment", "ok")

	out = k.kc.kubectlOK(t, aliceCfg, "delete", "pod", "web", "-n", "prod")
	require.Contains(t, out, `pod "web" deleted`)
	r = k.kubectl(aliceCfg, "delete", "pod", "web", "-n", "staging")
	require.NotEqual(t, 0, r.code, "the grant is for prod only")
	require.Contains(t, r.stderr, "--namespace staging")

	// The grant ends: refused again.
	s.ok(admin, "request", "revoke", id, "--comment", "done")
	k.kc.kubectlOK(t, k.kc.AdminKubeconfig, "run", "web2", "-n", "prod", "--image", "registry.invalid/web:1", "--restart", "Never")
	r = k.kubectl(aliceCfg, "delete", "pod", "web2", "-n", "prod")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "Forbidden")

	// exec is its own task: refused, then judged after approval (the API
	// server itself refuses exec on a pod that has no node).
	r = k.kubectl(aliceCfg, "exec", "web", "-n", "staging", "--", "cat", "/etc/hostname")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `Kubernetes\exec pods`)
	execID := s.request(alice, "--task", `Kubernetes\exec pods`, "--namespace", "staging", "--reason", "look at the pod")
	s.ok(admin, "request", "approve", execID)
	r = k.kubectl(aliceCfg, "exec", "web", "-n", "staging", "--", "cat", "/etc/hostname")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "does not have a host assigned", "the API server judged the exec: %s", r.stderr)

	// --as and --as-group system:masters gain nothing.
	r = k.kubectl(aliceCfg, "--as", "kube-admin", "--as-group", "system:masters", "get", "secrets", "-n", "prod")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "cannot be used through elevate")

	// RBAC applies to the person: bob's grant does not give him what RBAC
	// does not.
	bob := s.token("--sub", "bob")
	bobCfg := k.kubeconfig("bob")
	bobID := s.request(bob, "--task", `Kubernetes\delete pods`, "--namespace", "prod", "--reason", "try")
	s.ok(admin, "request", "approve", bobID)
	r = k.kubectl(bobCfg, "delete", "pod", "web2", "-n", "prod")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `User "bob" cannot delete resource "pods"`)

	// The audit answers who deleted what, where, under which grant.
	aud := s.ok(admin, "audit", "query", "--task", `Kubernetes\delete pods`, "-o", "json")
	require.Contains(t, aud, `"namespace": "prod"`)
	require.Contains(t, aud, id)
	var execAllowed bool
	for _, rec := range s.auditRecords() {
		attrs, _ := rec["attributes"].(map[string]any)
		if rec["event"] == "allowed" && rec["task"] == `Kubernetes\exec pods` && attrs["command"] == "cat /etc/hostname" {
			execAllowed = true
		}
	}
	require.True(t, execAllowed, "the exec's record carries its command")
}

// TestKubernetesWatchCutAtRevoke: `kubectl get -w` of a gated resource
// streams events while its grant is live and ends when it is revoked.
func TestKubernetesWatchCutAtRevoke(t *testing.T) {
	k := startKubeThroughElevate(t)
	s := k.s
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "create", "--task", `Kubernetes\watch pods`, "--approval", "manual")
	alice := s.token("--sub", "alice")
	aliceCfg := k.kubeconfig("alice")

	r := k.kubectl(aliceCfg, "get", "pods", "-n", "staging", "-w", "--request-timeout", "20s")
	require.NotEqual(t, 0, r.code, "watching pods is gated")
	require.Contains(t, r.stderr, `Kubernetes\watch pods`)

	id := s.request(alice, "--task", `Kubernetes\watch pods`, "--namespace", "staging", "--reason", "follow the rollout")
	s.ok(admin, "request", "approve", id)

	dir := t.TempDir()
	env := append(programEnv("HOME="+k.home), "KUBECONFIG="+aliceCfg)
	w := startBackground(t, env, dir, "watch.log", k.kc.Kubectl, "get", "pods", "-n", "staging", "-w", "-o", "name")
	t.Cleanup(w.kill)
	require.Eventually(t, func() bool { return strings.Contains(w.output(), "pod/web") }, 30*time.Second, 50*time.Millisecond,
		"the watch lists the pods: %s", w.output())

	// A new pod is an event on the open watch: it is streamed, not held.
	k.kc.kubectlOK(t, k.kc.AdminKubeconfig, "run", "web3", "-n", "staging", "--image", "registry.invalid/web:1", "--restart", "Never")
	require.Eventually(t, func() bool { return strings.Contains(w.output(), "pod/web3") }, 30*time.Second, 50*time.Millisecond,
		"the event reaches kubectl while the watch is open: %s", w.output())
	require.True(t, w.running())

	s.ok(admin, "request", "revoke", id, "--comment", "enough")
	require.True(t, w.wait(30*time.Second), "the watch ends at revoke: %s", w.output())

	var cut bool
	for _, rec := range s.auditRecords() {
		if rec["event"] == "outcome" && strings.Contains(fmt.Sprint(rec["reason"]), "stream cut: the grant was revoked") {
			cut = true
		}
	}
	require.True(t, cut, "the cut is in the audit log")
}
