package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/proxy/identity"
)

// asCLIEnv makes the test binary run as elevate itself: kubectl runs the
// exec plugin a kubeconfig names, and in tests that is this binary
// (os.Executable).
const asCLIEnv = "ELEVATE_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLIEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeJWT is a token-shaped string whose claims are claims; unsigned, for
// what reads claims without verifying.
func fakeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(b) + "." + enc([]byte("sig"))
}

// claimsOf reads a JWT's claims without verifying them.
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	return c
}

// credentialOf parses the ExecCredential credential kubernetes printed.
func credentialOf(t *testing.T, out string) map[string]any {
	t.Helper()
	var c map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &c), out)
	require.Equal(t, "client.authentication.k8s.io/v1", c["apiVersion"])
	require.Equal(t, "ExecCredential", c["kind"])
	require.Len(t, c, 3, "apiVersion, kind and status only: %s", out)
	return c["status"].(map[string]any)
}

// TestCredentialKubernetes: the token of the first source set, as an
// ExecCredential that expires when the token does.
func TestCredentialKubernetes(t *testing.T) {
	t.Setenv("ELEVATE_TOKEN", "")
	t.Setenv("ELEVATE_DATA_DIR", "")
	t.Setenv("KUBERNETES_EXEC_INFO", `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`)
	dir := t.TempDir()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	withExp := fakeJWT(t, map[string]any{"sub": "cred-ada", "exp": exp.Unix()})
	noExp := fakeJWT(t, map[string]any{"sub": "cred-ada"})

	// --token: the token as it is, expiring at its exp.
	r := runCLI(t, "--token", withExp, "credential", "kubernetes")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	st := credentialOf(t, r.stdout)
	require.Equal(t, withExp, st["token"])
	require.Equal(t, exp.UTC().Format(time.RFC3339), st["expirationTimestamp"])

	// No exp: no expirationTimestamp.
	r = runCLI(t, "--token", noExp, "credential", "kubernetes")
	require.Equal(t, 0, r.code, r.stderr)
	st = credentialOf(t, r.stdout)
	require.Equal(t, noExp, st["token"])
	require.NotContains(t, st, "expirationTimestamp")

	// ELEVATE_TOKEN comes before --token-file.
	tf := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tf, []byte("\n  "+withExp+"\n\n"), 0o600))
	t.Setenv("ELEVATE_TOKEN", noExp)
	r = runCLI(t, "credential", "kubernetes", "--token-file", tf)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, noExp, credentialOf(t, r.stdout)["token"])
	t.Setenv("ELEVATE_TOKEN", "")

	// --token-file, trimmed.
	r = runCLI(t, "credential", "kubernetes", "--token-file", tf)
	require.Equal(t, 0, r.code, r.stderr)
	st = credentialOf(t, r.stdout)
	require.Equal(t, withExp, st["token"])
	require.Equal(t, exp.UTC().Format(time.RFC3339), st["expirationTimestamp"])

	// --dev-subject: a 15-minute token of the dev issuer in the data
	// directory, which it verifies.
	dev, err := identity.LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)
	r = runCLI(t, "credential", "kubernetes", "--dev-subject", "cred-bob", "--dev-groups", "ops,dev", "--data-dir", dir)
	require.Equal(t, 0, r.code, r.stderr)
	st = credentialOf(t, r.stdout)
	tok := st["token"].(string)
	v, err := identity.New(context.Background(), identity.Config{Issuers: []identity.Issuer{dev.Issuer()}})
	require.NoError(t, err)
	id, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, "cred-bob", id.Subject)
	require.Equal(t, []string{"ops", "dev"}, id.Groups)
	expiry, err := time.Parse(time.RFC3339, st["expirationTimestamp"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(15*time.Minute), expiry, time.Minute)

	// ELEVATE_DATA_DIR, as the kubeconfig's exec entry sets it.
	t.Setenv("ELEVATE_DATA_DIR", dir)
	r = runCLI(t, "credential", "kubernetes", "--dev-subject", "cred-bob")
	require.Equal(t, 0, r.code, r.stderr)
	t.Setenv("ELEVATE_DATA_DIR", "")

	// Each failure: one line, no token in it.
	secretLines := filepath.Join(dir, "two-lines")
	require.NoError(t, os.WriteFile(secretLines, []byte("SECRET-PART-ONE\nSECRET-PART-TWO\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	for _, tc := range []struct {
		desc string
		args []string
		code int
		want string
	}{
		{"no token at all", nil, 2, "--token or ELEVATE_TOKEN, give --token-file FILE, or --dev-subject NAME"},
		{"an empty token file", []string{"--token-file", empty}, 1, "is empty"},
		{"a missing token file", []string{"--token-file", filepath.Join(dir, "none")}, 1, "--token-file"},
		{"a token file of two lines", []string{"--token-file", secretLines}, 1, "white space inside"},
		{"no dev issuer", []string{"--dev-subject", "x", "--data-dir", filepath.Join(dir, "none")}, 1, "--data-dir or ELEVATE_DATA_DIR"},
		{"a blank subject", []string{"--dev-subject", " "}, 2, "--dev-subject"},
		{"groups without a subject", []string{"--dev-groups", "ops"}, 2, "--dev-groups: only with --dev-subject"},
		{"an argument", []string{"extra"}, 2, "unknown command"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := runCLI(t, append([]string{"credential", "kubernetes"}, tc.args...)...)
			require.Equal(t, tc.code, r.code, r.stderr)
			line := oneLineOf(t, r.stderr)
			require.Contains(t, line, tc.want)
			require.NotContains(t, line, "SECRET-PART")
			require.Empty(t, r.stdout)
		})
	}
	r = runCLI(t, "credential")
	require.Equal(t, 2, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "kubernetes")
}

// kubeFixture is a dev server with a kubernetes upstream whose public proxy
// URL is kube, a TLS server that stands for the proxy listener to kubectl
// and records the Authorization of each call.
type kubeFixture struct {
	s      *devServer
	kube   *httptest.Server
	caFile string // kube's certificate, PEM

	mu    sync.Mutex
	auths []string
}

func (f *kubeFixture) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auths) == 0 {
		return ""
	}
	return f.auths[len(f.auths)-1]
}

func newKubeFixture(t *testing.T) *kubeFixture {
	t.Helper()
	f := &kubeFixture{}
	f.kube = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kubernetes/prod/api" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:443"}]}`))
	}))
	t.Cleanup(f.kube.Close)
	dir := t.TempDir()
	f.caFile = filepath.Join(dir, "proxy-ca.pem")
	require.NoError(t, os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.kube.Certificate().Raw}), 0o600))
	secret := filepath.Join(dir, "sa.token")
	require.NoError(t, os.WriteFile(secret, []byte("service-account-token\n"), 0o600))
	f.s = newDevServer(t, "proxy:\n  public_url: "+f.kube.URL+"\n"+
		"upstreams:\n"+
		"  - {name: prod, type: kubernetes, url: \"https://127.0.0.1:9\", prefix: /kubernetes/prod/, credential: {type: bearer, value_file: "+secret+"}}\n"+
		"  - {name: staging, type: kubernetes, url: \"https://127.0.0.1:9\", prefix: /kubernetes/staging/, credential: {type: bearer, value_file: "+secret+"}}\n"+
		"  - {name: web, url: \"http://127.0.0.1:9\", prefix: /web/}\n")
	return f
}

// foreignKubeconfig has entries of others, keys elevate does not know, a
// comment, and stale entries called elevate-prod.
const foreignKubeconfig = `# my clusters
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
  - name: home
    cluster:
      server: https://home.example:6443
      insecure-skip-tls-verify: true
  - name: elevate-prod
    cluster:
      server: https://stale.example
contexts:
  - name: home
    context: {cluster: home, user: me, namespace: default}
  - name: elevate-prod
    context: {cluster: elevate-prod, user: elevate-prod}
current-context: home
users:
  - name: me
    user:
      token: my-own-token
  - name: elevate-prod
    user:
      token: stale-token
extensions:
  - name: something
    extension: {x: 1}
x-unknown: keep me
`

// kubeconfigOf reads a kubeconfig as plain data.
func kubeconfigOf(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m), string(b))
	return m
}

// named is the entries of list called name.
func named(m map[string]any, list, name string) []map[string]any {
	var out []map[string]any
	items, _ := m[list].([]any)
	for _, it := range items {
		if e, ok := it.(map[string]any); ok && e["name"] == name {
			out = append(out, e)
		}
	}
	return out
}

// TestKubeconfig: the context, cluster and user go into the kubeconfig in
// place of those of the same name, beside everything else; the user runs
// this binary for the token and holds none; kubectl reads the file and
// sends the plugin's token.
func TestKubeconfig(t *testing.T) {
	t.Setenv("ELEVATE_TOKEN", "")
	t.Setenv("ELEVATE_DATA_DIR", "")
	f := newKubeFixture(t)
	s := f.s
	dir := t.TempDir()
	file := filepath.Join(dir, "kube", "config")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
	require.NoError(t, os.WriteFile(file, []byte(foreignKubeconfig), 0o644))

	r := runCLI(t, "--server", s.control, "kubeconfig", "--upstream", "prod", "--kubeconfig", file,
		"--dev-subject", "kube-ada", "--dev-groups", "ops", "--data-dir", s.dataDir, "--proxy-ca-file", f.caFile, "--namespace", "team")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Equal(t, 1, strings.Count(r.stdout, "\n"), r.stdout)
	require.Contains(t, r.stdout, "kubectl --context elevate-prod get pods")
	require.Contains(t, r.stdout, file)

	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(raw), "# my clusters")
	require.NotContains(t, string(raw), "stale")
	require.NotContains(t, string(raw), "eyJ", "no token in the kubeconfig")

	m := kubeconfigOf(t, file)
	require.Equal(t, "elevate-prod", m["current-context"])
	require.Equal(t, "keep me", m["x-unknown"])
	require.Equal(t, map[string]any{"colors": true}, m["preferences"])
	require.Len(t, m["extensions"], 1)
	require.Equal(t, []map[string]any{{"name": "home", "cluster": map[string]any{"server": "https://home.example:6443", "insecure-skip-tls-verify": true}}}, named(m, "clusters", "home"))
	require.Equal(t, []map[string]any{{"name": "home", "context": map[string]any{"cluster": "home", "user": "me", "namespace": "default"}}}, named(m, "contexts", "home"))
	require.Equal(t, []map[string]any{{"name": "me", "user": map[string]any{"token": "my-own-token"}}}, named(m, "users", "me"))

	pemBytes, err := os.ReadFile(f.caFile)
	require.NoError(t, err)
	require.Equal(t, []map[string]any{{"name": "elevate-prod", "cluster": map[string]any{
		"server": f.kube.URL + "/kubernetes/prod", "certificate-authority-data": base64.StdEncoding.EncodeToString(pemBytes)}}},
		named(m, "clusters", "elevate-prod"))
	require.Equal(t, []map[string]any{{"name": "elevate-prod", "context": map[string]any{
		"cluster": "elevate-prod", "user": "elevate-prod", "namespace": "team"}}}, named(m, "contexts", "elevate-prod"))
	exe, err := os.Executable()
	require.NoError(t, err)
	dataDir, err := filepath.Abs(s.dataDir)
	require.NoError(t, err)
	users := named(m, "users", "elevate-prod")
	require.Len(t, users, 1)
	require.Equal(t, map[string]any{"exec": map[string]any{
		"apiVersion": "client.authentication.k8s.io/v1", "command": exe,
		"args":            []any{"credential", "kubernetes", "--dev-subject", "kube-ada", "--dev-groups", "ops"},
		"env":             []any{map[string]any{"name": "ELEVATE_DATA_DIR", "value": dataDir}},
		"installHint":     users[0]["user"].(map[string]any)["exec"].(map[string]any)["installHint"],
		"interactiveMode": "Never", "provideClusterInfo": false,
	}}, users[0]["user"])

	// Again under another name, with a token file, without switching: the
	// first entries stay.
	tok := s.token(t, "kube-bob")
	tf := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tf, []byte(tok+"\n"), 0o600))
	r = runCLI(t, "--server", s.control, "--ca-file", f.caFile, "kubeconfig", "--upstream", "prod", "--kubeconfig", file,
		"--context", "prod-bob", "--token-file", tf, "--no-switch")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "kubectl --context prod-bob get pods")
	m = kubeconfigOf(t, file)
	require.Equal(t, "elevate-prod", m["current-context"])
	require.Len(t, named(m, "users", "elevate-prod"), 1)
	bob := named(m, "users", "prod-bob")
	require.Len(t, bob, 1)
	bobExec := bob[0]["user"].(map[string]any)["exec"].(map[string]any)
	require.Equal(t, []any{"credential", "kubernetes", "--token-file", tf}, bobExec["args"])
	require.NotContains(t, bobExec, "env")
	require.NotEqual(t, "", named(m, "clusters", "prod-bob")[0]["cluster"].(map[string]any)["certificate-authority-data"], "--ca-file is the default --proxy-ca-file")
	raw, err = os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, string(raw), tok)

	// A new file in a new directory, the first of $KUBECONFIG.
	fresh := filepath.Join(dir, "new", "dir", "config")
	t.Setenv("KUBECONFIG", fresh+string(filepath.ListSeparator)+file)
	r = runCLI(t, "--server", s.control, "--token", tok, "kubeconfig", "--upstream", "staging")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "ELEVATE_TOKEN")
	st, err = os.Stat(filepath.Dir(fresh))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(fresh)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	m = kubeconfigOf(t, fresh)
	require.Equal(t, "v1", m["apiVersion"])
	require.Equal(t, "Config", m["kind"])
	require.Equal(t, "elevate-staging", m["current-context"])
	require.Equal(t, []any{"credential", "kubernetes"},
		named(m, "users", "elevate-staging")[0]["user"].(map[string]any)["exec"].(map[string]any)["args"])
	raw, err = os.ReadFile(fresh)
	require.NoError(t, err)
	require.NotContains(t, string(raw), tok)
	entries, err := os.ReadDir(filepath.Dir(fresh))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left")

	t.Run("kubectl", func(t *testing.T) { kubectlUsesKubeconfig(t, f, file, tok) })
}

// kubectlUsesKubeconfig: kubectl reads what kubeconfig wrote, runs the
// plugin, and sends the token it printed.
func kubectlUsesKubeconfig(t *testing.T, f *kubeFixture, file, bobToken string) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	kubectl := filepath.Join(home, ".cache", "elevate", "kubernetes-v1.37.2", "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("no kubectl at %s (built by the e2e scripts): %v", kubectl, err)
	}
	env := []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), asCLIEnv + "=1"}
	kubectlRun := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", file}, args...)...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "kubectl %v: %s", args, stderr.String())
		return string(out)
	}

	var view struct {
		CurrentContext string `json:"current-context"`
		Clusters       []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server string `json:"server"`
				CAData string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				Exec struct {
					Command string   `json:"command"`
					Args    []string `json:"args"`
				} `json:"exec"`
			} `json:"user"`
		} `json:"users"`
	}
	require.NoError(t, json.Unmarshal([]byte(kubectlRun("config", "view", "--minify", "--raw", "-o", "json")), &view))
	require.Equal(t, "elevate-prod", view.CurrentContext)
	require.Len(t, view.Clusters, 1)
	require.Equal(t, f.kube.URL+"/kubernetes/prod", view.Clusters[0].Cluster.Server)
	ca, err := base64.StdEncoding.DecodeString(view.Clusters[0].Cluster.CAData)
	require.NoError(t, err)
	block, _ := pem.Decode(ca)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, f.kube.Certificate().Raw, cert.Raw)
	require.Len(t, view.Users, 1)
	require.Equal(t, []string{"credential", "kubernetes", "--dev-subject", "kube-ada", "--dev-groups", "ops"}, view.Users[0].User.Exec.Args)

	// The current context: a token the plugin mints for kube-ada.
	require.Contains(t, kubectlRun("get", "--raw", "/api"), "APIVersions")
	auth := f.lastAuth()
	require.True(t, strings.HasPrefix(auth, "Bearer "), auth)
	claims := claimsOf(t, strings.TrimPrefix(auth, "Bearer "))
	require.Equal(t, "kube-ada", claims["sub"])
	require.Equal(t, []any{"ops"}, claims["groups"])

	// The other context: the token of the file, exactly.
	require.Contains(t, kubectlRun("--context", "prod-bob", "get", "--raw", "/api"), "APIVersions")
	require.Equal(t, "Bearer "+bobToken, f.lastAuth())
}

// TestKubeconfigErrors: each mistake is one line, and the kubeconfig is
// left as it was.
func TestKubeconfigErrors(t *testing.T) {
	t.Setenv("ELEVATE_TOKEN", "")
	t.Setenv("ELEVATE_DATA_DIR", "")
	f := newKubeFixture(t)
	s := f.s
	tok := s.token(t, "kube-err")
	dir := t.TempDir()
	file := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(file, []byte(foreignKubeconfig), 0o600))
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("no certificate"), 0o600))
	notYAML := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(notYAML, []byte("clusters: [\n"), 0o600))
	listNot := filepath.Join(dir, "list-not")
	require.NoError(t, os.WriteFile(listNot, []byte("clusters: {a: b}\n"), 0o600))

	for _, tc := range []struct {
		desc string
		args []string
		code int
		want []string
	}{
		{"no upstream", []string{"--token", tok, "kubeconfig"}, 2, []string{"--upstream: required"}},
		{"an http upstream", []string{"--token", tok, "kubeconfig", "--upstream", "web"}, 1,
			[]string{`"web" is of type http, not kubernetes`, "kubernetes upstreams: prod, staging"}},
		{"a mistyped upstream", []string{"--token", tok, "kubeconfig", "--upstream", "prd"}, 1,
			[]string{`no upstream named "prd"`, `did you mean "prod"?`, "kubernetes upstreams: prod, staging"}},
		{"an unknown upstream", []string{"--token", tok, "kubeconfig", "--upstream", "elsewhere"}, 1,
			[]string{`no upstream named "elsewhere"`, "kubernetes upstreams: prod, staging"}},
		{"no token", []string{"kubeconfig", "--upstream", "prod"}, 3, []string{"401", "ELEVATE_TOKEN"}},
		{"two token sources", []string{"kubeconfig", "--upstream", "prod", "--token-file", file, "--dev-subject", "x"}, 2,
			[]string{"--token-file or --dev-subject, not both"}},
		{"groups without a subject", []string{"kubeconfig", "--upstream", "prod", "--dev-groups", "ops"}, 2, []string{"--dev-groups: only with --dev-subject"}},
		{"a CA file without a certificate", []string{"--token", tok, "kubeconfig", "--upstream", "prod", "--proxy-ca-file", notPEM}, 2,
			[]string{"--proxy-ca-file", "no PEM certificate"}},
		{"a bad proxy URL", []string{"--token", tok, "kubeconfig", "--upstream", "prod", "--proxy", "ftp://x"}, 2, []string{"--proxy"}},
		{"a kubeconfig that is not YAML", []string{"--token", tok, "kubeconfig", "--upstream", "prod", "--kubeconfig", notYAML}, 1,
			[]string{"--kubeconfig", "not YAML"}},
		{"a kubeconfig whose clusters are no list", []string{"--token", tok, "kubeconfig", "--upstream", "prod", "--kubeconfig", listNot}, 1,
			[]string{"clusters is not a list"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			args := append([]string{"--server", s.control}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--kubeconfig") {
				args = append(args, "--kubeconfig", file)
			}
			r := runCLI(t, args...)
			require.Equal(t, tc.code, r.code, "%v: %s", args, r.stderr)
			line := oneLineOf(t, r.stderr)
			for _, w := range tc.want {
				require.Contains(t, line, w)
			}
			require.NotContains(t, line, tok)
			require.Empty(t, r.stdout)
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Equal(t, foreignKubeconfig, string(b), "the kubeconfig is untouched")
		})
	}
}

// TestKubeconfigMerge: merging into an empty file, a file of null lists
// and a file with duplicates of the name.
func TestKubeconfigMerge(t *testing.T) {
	e := kubeEntry{name: "elevate-x", cluster: kubeCluster{Server: "https://p/x"},
		user:    kubeUser{Exec: kubeExec{APIVersion: execAPIVersion, Command: "/bin/elevate", Args: []string{"credential", "kubernetes"}, InteractiveMode: "Never"}},
		context: kubeContext{Cluster: "elevate-x", User: "elevate-x"}}
	for _, old := range []string{"", "---\n", "null\n", "apiVersion: v1\nclusters: null\nusers: []\ncontexts:\n",
		"clusters:\n- name: elevate-x\n  cluster: {server: a}\n- name: b\n  cluster: {server: b}\n- name: elevate-x\n  cluster: {server: c}\n"} {
		b, err := mergeKubeconfig([]byte(old), e, false)
		require.NoError(t, err, old)
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(b, &m), string(b))
		for _, list := range []string{"clusters", "users", "contexts"} {
			require.Len(t, named(m, list, "elevate-x"), 1, "%s in %q:\n%s", list, old, b)
		}
		require.Equal(t, "https://p/x", named(m, "clusters", "elevate-x")[0]["cluster"].(map[string]any)["server"])
		require.NotContains(t, m, "current-context")
		if strings.Contains(old, "name: b") {
			require.Len(t, named(m, "clusters", "b"), 1)
		}
	}
	_, err := mergeKubeconfig([]byte("- a\n- b\n"), e, true)
	require.ErrorContains(t, err, "not a mapping")
}
