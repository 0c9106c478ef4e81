package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/internal/kubetest"
)

// The Kubernetes measurement: `kubectl get pods` against a private
// kube-apiserver called directly and through elevate.
const (
	kubeNamespace      = "bench"
	kubePods           = 10
	kubeUpstreamName   = "bench"
	kubeUpstreamPrefix = "/kubernetes/bench/"
	kubeAdminUser      = "kube-admin"    // system:masters, for the setup only
	kubeProxyUser      = "elevate-proxy" // elevate's credential: impersonation and nothing else
	kubeUser           = "alice"         // the person: get, list and watch pods in bench
)

// The ways kubectl reaches the API server, in the order of each round.
const (
	kubeDirect  = "direct"
	kubeElevate = "elevate"
	kubeExec    = "elevate-exec"
)

// kubeVariant is one way of calling, and its calls' wall times in the
// order they ran.
type kubeVariant struct {
	Name, Label string
	Times       []time.Duration
}

// kubeResult is the Kubernetes measurement.
type kubeResult struct {
	Calls    int // per variant
	Pods     int
	Command  string // what kubectl ran, without --kubeconfig
	Variants []kubeVariant
	// Order is the variant index of each call, as run.
	Order []int
}

func (k *kubeResult) variant(name string) *kubeVariant {
	for i := range k.Variants {
		if k.Variants[i].Name == name {
			return &k.Variants[i]
		}
	}
	return nil
}

// interleave is the order of rounds calls of each of k variants: every
// round runs each variant once, round r starting with variant r mod k, so
// that drift in the machine reaches every variant alike and no variant
// always follows the same one.
func interleave(rounds, k int) []int {
	if rounds <= 0 || k <= 0 {
		return nil
	}
	out := make([]int, 0, rounds*k)
	for r := range rounds {
		for i := range k {
			out = append(out, (r+i)%k)
		}
	}
	return out
}

// kubeManifest is what the harness applies as kube-admin: elevate-proxy
// may impersonate and do nothing else; namespace bench with its default
// ServiceAccount (the ServiceAccount admission plugin wants it before a
// pod), a Role reading pods bound to alice, and pods pods that stay
// Pending (no scheduler runs).
func kubeManifest(pods int) string {
	var b strings.Builder
	b.WriteString(kubetest.ImpersonatorManifest(kubeProxyUser))
	doc := func(format string, args ...any) {
		b.WriteString("---\n")
		fmt.Fprintf(&b, format, args...)
	}
	doc("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", kubeNamespace)
	doc("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: %s}\n", kubeNamespace)
	doc(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: %s}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
`, kubeNamespace)
	doc(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %s-pod-reader, namespace: %s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}
`, kubeUser, kubeNamespace, kubeUser)
	for i := 1; i <= pods; i++ {
		doc(`apiVersion: v1
kind: Pod
metadata: {name: web-%02d, namespace: %s, labels: {app: web}}
spec:
  containers:
  - {name: web, image: "registry.invalid/web:1"}
`, i, kubeNamespace)
	}
	return b.String()
}

// kubeconfig is a kubeconfig with one cluster, one user and one context.
// user is the user entry: {"token": T} or {"exec": {...}}.
func kubeconfig(server, caFile, userName string, user map[string]any) ([]byte, error) {
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{"name": "bench", "cluster": map[string]any{
			"server": server, "certificate-authority": caFile,
		}}},
		"users":           []any{map[string]any{"name": userName, "user": user}},
		"contexts":        []any{map[string]any{"name": "bench", "context": map[string]any{"cluster": "bench", "user": userName}}},
		"current-context": "bench",
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// kubeBench is what the Kubernetes measurement started.
type kubeBench struct {
	dir, home        string
	kubectlBin       string
	apiURL, proxyURL string // proxyURL: elevate's proxy listener, https
	hc               *http.Client
	adminToken       string
	proxyToken       string
	aliceToken       string // alice's API-server token
}

// kubernetes measures `kubectl get pods` against a kube-apiserver of its
// own: directly with alice's token, through elevate with alice's token of
// the benchmark's issuer in the kubeconfig, and through elevate with that
// token from `elevate credential kubernetes` (kubectl's exec plugin). It
// stops everything it started before it returns.
func (h *harness) kubernetes(ctx context.Context) error {
	apiserverBin := filepath.Join(h.cfg.kubeDir, "kube-apiserver")
	k := &kubeBench{
		dir:        filepath.Join(h.cfg.work, "kubernetes"),
		kubectlBin: filepath.Join(h.cfg.kubeDir, "kubectl"),
	}
	k.home = filepath.Join(k.dir, "home")
	if err := os.MkdirAll(k.home, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	etcdURL := "http://" + addr(0)
	k.apiURL, k.proxyURL = "https://"+addr(2), "https://"+addr(3)
	controlURL := "http://" + addr(4)

	// One etcd for the API server (under /registry) and elevate (under
	// /elevate/).
	etcd, err := h.ps.start("kube-etcd", nil, self, "etcd", "--addr", addr(0), "--peer", addr(1), "--dir", filepath.Join(k.dir, "etcd"))
	if err != nil {
		return err
	}
	defer h.ps.stop(etcd)
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", 30*time.Second, status200); err != nil {
		return err
	}

	ca, err := newBenchCA(k.dir, "bench-ca")
	if err != nil {
		return err
	}
	k.hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12},
	}}
	defer k.hc.CloseIdleConnections()

	apiserver, err := k.startAPIServer(ctx, h, apiserverBin, ca, etcdURL, ports[2])
	if err != nil {
		return err
	}
	defer h.ps.stop(apiserver)
	adminCfg, err := k.writeKubeconfig(kubeAdminUser, k.apiURL, ca.pemFile, map[string]any{"token": k.adminToken})
	if err != nil {
		return err
	}
	if err := k.setUp(ctx, adminCfg); err != nil {
		return err
	}

	// elevate, its proxy listener on TLS from the same CA.
	if h.iss == nil {
		keys := filepath.Join(h.cfg.work, "keys")
		if err := os.MkdirAll(keys, 0o700); err != nil {
			return err
		}
		if h.iss, err = newIssuer(keys); err != nil {
			return err
		}
	}
	if h.tokenCache == nil {
		h.tokenCache = map[string]string{}
	}
	el, err := k.startElevate(ctx, h, ca, etcdURL, addr(3), addr(4), controlURL)
	if err != nil {
		return err
	}
	defer h.ps.stop(el)
	jwt, err := h.token(kubeUser)
	if err != nil {
		return err
	}
	jwtFile := filepath.Join(k.dir, kubeUser+".jwt")
	if err := os.WriteFile(jwtFile, []byte(jwt+"\n"), 0o600); err != nil {
		return err
	}
	if err := k.waitGET(ctx, k.proxyURL+strings.TrimSuffix(kubeUpstreamPrefix, "/")+"/api/v1/namespaces/"+kubeNamespace+"/pods", jwt, nil, 30*time.Second); err != nil {
		return fmt.Errorf("alice through elevate: %w\nelevate: %s", err, el.tail())
	}

	// The three kubeconfigs: static tokens, so that what is timed is the
	// path and not a credential plugin, and the exec plugin apart.
	proxyServer := k.proxyURL + strings.TrimSuffix(kubeUpstreamPrefix, "/")
	direct, err := k.writeKubeconfig("direct", k.apiURL, ca.pemFile, map[string]any{"token": k.aliceToken})
	if err != nil {
		return err
	}
	through, err := k.writeKubeconfig("elevate", proxyServer, ca.pemFile, map[string]any{"token": jwt})
	if err != nil {
		return err
	}
	withExec, err := k.writeKubeconfig("elevate-exec", proxyServer, ca.pemFile, map[string]any{"exec": map[string]any{
		"apiVersion":         "client.authentication.k8s.io/v1",
		"command":            h.cfg.elevateBin,
		"args":               []string{"credential", "kubernetes", "--token-file", jwtFile},
		"interactiveMode":    "Never",
		"provideClusterInfo": false,
	}})
	if err != nil {
		return err
	}

	res := &kubeResult{Calls: h.cfg.kubeCalls, Pods: kubePods, Command: "kubectl get pods -n " + kubeNamespace}
	res.Variants = []kubeVariant{
		{Name: kubeDirect, Label: "API server directly (alice's token)"},
		{Name: kubeElevate, Label: "through elevate (alice's token in the kubeconfig)"},
		{Name: kubeExec, Label: "through elevate, token from `elevate credential kubernetes` (includes the plugin's process start)"},
	}
	configs := []string{direct, through, withExec}
	args := []string{"get", "pods", "-n", kubeNamespace}

	// Warm-up: one call each fills the discovery cache in HOME; every
	// way must list all the pods.
	for i, cfg := range configs {
		_, out, err := k.kubectl(ctx, cfg, args...)
		if err != nil {
			return fmt.Errorf("kubectl %s (%s): %w", strings.Join(args, " "), res.Variants[i].Name, err)
		}
		if n := strings.Count(out, "web-"); n != kubePods {
			return fmt.Errorf("kubectl %s (%s) listed %d pods, want %d:\n%s", strings.Join(args, " "), res.Variants[i].Name, n, kubePods, out)
		}
	}

	res.Order = interleave(h.cfg.kubeCalls, len(configs))
	for _, v := range res.Order {
		took, _, err := k.kubectl(ctx, configs[v], args...)
		if err != nil {
			return fmt.Errorf("kubectl %s (%s): %w", strings.Join(args, " "), res.Variants[v].Name, err)
		}
		res.Variants[v].Times = append(res.Variants[v].Times, took)
	}
	h.rep.Kubernetes = res
	return nil
}

// startAPIServer writes the API server's certificate, keys and token file
// and starts it on port over etcdURL, until /readyz answers 200.
func (k *kubeBench) startAPIServer(ctx context.Context, h *harness, bin string, ca *benchCA, etcdURL string, port int) (*proc, error) {
	certFile, keyFile, err := ca.serving(k.dir, "apiserver")
	if err != nil {
		return nil, err
	}
	saPublic, saPrivate, err := kubetest.WriteServiceAccountKeys(k.dir)
	if err != nil {
		return nil, err
	}
	for _, t := range []*string{&k.adminToken, &k.proxyToken, &k.aliceToken} {
		if *t, err = kubetest.Token(); err != nil {
			return nil, err
		}
	}
	tokenFile := filepath.Join(k.dir, "tokens.csv")
	if err := kubetest.WriteTokenFile(tokenFile, []kubetest.User{
		{Token: k.adminToken, Name: kubeAdminUser, Groups: []string{"system:masters"}},
		{Token: k.proxyToken, Name: kubeProxyUser},
		{Token: k.aliceToken, Name: kubeUser},
	}); err != nil {
		return nil, err
	}
	server := kubetest.APIServer{EtcdURL: etcdURL, TokenFile: tokenFile, SAPublic: saPublic, SAPrivate: saPrivate,
		CertFile: certFile, KeyFile: keyFile, CertDir: filepath.Join(k.dir, "certs")}
	p, err := h.ps.start("kube-apiserver", nil, bin, server.Args(port)...)
	if err != nil {
		return nil, err
	}
	if err := k.waitGET(ctx, k.apiURL+"/readyz", k.adminToken, p, 120*time.Second); err != nil {
		h.ps.stop(p)
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	return p, nil
}

// setUp applies kubeManifest as kube-admin and waits until alice may list
// the pods directly and elevate-proxy may as alice: the RBAC authorizer
// reads bindings from its informers, a moment after they are stored.
func (k *kubeBench) setUp(ctx context.Context, adminCfg string) error {
	manifest := filepath.Join(k.dir, "setup.yaml")
	if err := os.WriteFile(manifest, []byte(kubeManifest(kubePods)), 0o600); err != nil {
		return err
	}
	if _, out, err := k.kubectl(ctx, adminCfg, "apply", "-f", manifest); err != nil {
		return fmt.Errorf("kubectl apply: %w\n%s", err, out)
	}
	pods := k.apiURL + "/api/v1/namespaces/" + kubeNamespace + "/pods"
	if err := k.waitGET(ctx, pods, k.aliceToken, nil, 30*time.Second); err != nil {
		return fmt.Errorf("alice's RBAC binding: %w", err)
	}
	if err := k.waitGET(ctx, pods, k.proxyToken, nil, 30*time.Second, "Impersonate-User", kubeUser); err != nil {
		return fmt.Errorf("elevate-proxy's impersonation: %w", err)
	}
	return nil
}

// startElevate runs `elevate serve` with the Kubernetes upstream, enables
// access control, and returns the process.
func (k *kubeBench) startElevate(ctx context.Context, h *harness, ca *benchCA, etcdURL, proxyAddr, controlAddr, controlURL string) (*proc, error) {
	dataDir := filepath.Join(k.dir, "elevate")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.serving(k.dir, "proxy")
	if err != nil {
		return nil, err
	}
	credFile := filepath.Join(k.dir, kubeProxyUser+".token")
	if err := os.WriteFile(credFile, []byte(k.proxyToken+"\n"), 0o600); err != nil {
		return nil, err
	}
	cfg, err := yaml.Marshal(map[string]any{
		"proxy_addr":   proxyAddr,
		"control_addr": controlAddr,
		"data_dir":     dataDir,
		"etcd":         map[string]any{"endpoints": []string{etcdURL}},
		"identity": map[string]any{
			"issuers": []map[string]any{{
				"issuer": issuerName, "audience": []string{audience},
				"pem_files": []string{h.iss.pubFile}, "algorithms": []string{"RS256"},
			}},
		},
		"audit": map[string]any{"path": filepath.Join(dataDir, "audit.log")},
		"proxy": map[string]any{"tls_cert_file": certFile, "tls_key_file": keyFile},
		"upstreams": []map[string]any{{
			"name": kubeUpstreamName, "type": "kubernetes", "url": k.apiURL, "ca_file": ca.pemFile,
			"prefix":     kubeUpstreamPrefix,
			"credential": map[string]any{"type": "bearer", "value_file": credFile},
		}},
	})
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(k.dir, "elevate.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	p, err := h.ps.start("elevate-kubernetes", nil, h.cfg.elevateBin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, p, controlURL+"/readyz", 60*time.Second, status200); err != nil {
		h.ps.stop(p)
		return nil, err
	}
	admin, err := h.token("ada", adminGroup)
	if err != nil {
		h.ps.stop(p)
		return nil, err
	}
	if err := newAPIClient(controlURL).enable(ctx, admin); err != nil {
		h.ps.stop(p)
		return nil, err
	}
	return p, nil
}

// writeKubeconfig writes dir/NAME.kubeconfig.
func (k *kubeBench) writeKubeconfig(name, server, caFile string, user map[string]any) (string, error) {
	b, err := kubeconfig(server, caFile, name, user)
	if err != nil {
		return "", err
	}
	path := filepath.Join(k.dir, name+".kubeconfig")
	return path, os.WriteFile(path, b, 0o600)
}

// kubectl runs kubectl with kubeconfig, at most a minute, in an
// environment of its own (HOME, for the discovery cache, and PATH), and
// returns its wall time and standard output.
func (k *kubeBench) kubectl(ctx context.Context, kubeconfig string, args ...string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.kubectlBin, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + k.home, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = k.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return took, stdout.String(), nil
}

// waitGET sends GET url with token and header pairs until it answers 200,
// p (when given) exits, or timeout passes.
func (k *kubeBench) waitGET(ctx context.Context, url, token string, p *proc, timeout time.Duration, header ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no answer"
	for {
		if p != nil {
			if done, err := p.exited(); done {
				return fmt.Errorf("%s exited (%v):\n%s", p.name, err, p.tail())
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		if resp, err := k.hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("GET %s: no 200 in %s, last: %s", url, timeout, last)
			if p != nil {
				msg += "\n" + p.tail()
			}
			return errors.New(msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeKubeCSV writes every call's wall time, in the order run: its
// sequence number, round, variant and wall time in microseconds.
func writeKubeCSV(w io.Writer, k *kubeResult) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"seq", "round", "variant", "wall_us"}); err != nil {
		return err
	}
	next := make([]int, len(k.Variants))
	n := len(k.Variants)
	for seq, v := range k.Order {
		if v < 0 || v >= n || next[v] >= len(k.Variants[v].Times) {
			return fmt.Errorf("call %d: no time for variant %d", seq, v)
		}
		d := k.Variants[v].Times[next[v]]
		next[v]++
		if err := cw.Write([]string{strconv.Itoa(seq + 1), strconv.Itoa(seq/n + 1), k.Variants[v].Name,
			strconv.FormatInt(d.Microseconds(), 10)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// kubeVersions names the versions of kube-apiserver and kubectl in dir.
func kubeVersions(ctx context.Context, dir string) []string {
	return []string{
		"kube-apiserver: " + firstLine(ctx, filepath.Join(dir, "kube-apiserver"), "--version"),
		"kubectl: " + firstLine(ctx, filepath.Join(dir, "kubectl"), "version", "--client"),
	}
}
