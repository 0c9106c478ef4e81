// Package test holds end-to-end tests that build the real elevate binary and
// run it against real servers on loopback.
//
// This file is the harness: the binary, servers started and stopped, free
// ports, token issuers, embedded etcd, the CLI and HTTP calls, and every
// other helper that more than one test file uses. A helper of one feature
// stays in that feature's file.
package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/etcdtest"
)

// binary is the elevate binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "elevate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "elevate")
	args := []string{"build", "-o", binary}
	if os.Getenv("ELEVATE_TEST_RACE") != "" {
		// make test-race: the binary itself runs under the race detector.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/elevate-pam/elevate/cmd/elevate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building elevate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `elevate serve`.
type server struct {
	t           *testing.T
	cmd         *exec.Cmd
	dataDir     string
	proxyAddr   string
	controlAddr string
	stdout      *lockedBuffer
	stderr      *lockedBuffer
	exited      chan error
}

// cacheDir is where test/e2e's build scripts keep what they build:
// $ELEVATE_CACHE, else elevate/ in the user's cache directory.
func cacheDir(t *testing.T) string {
	t.Helper()
	if cache := os.Getenv("ELEVATE_CACHE"); cache != "" {
		return cache
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "elevate")
}

// startDev runs `elevate serve --dev` on free ports with a temp data dir
// and waits until /readyz answers 200.
func startDev(t *testing.T, extra ...string) *server {
	t.Helper()
	dataDir := t.TempDir()
	return retryPortClash(t, func(int) (*server, error) {
		return serveDevAt(t, dataDir, freeAddr(t), freeAddr(t), extra)
	})
}

// serveDevAt runs `elevate serve --dev` on dataDir at the given addresses
// and waits until /readyz answers 200.
func serveDevAt(t *testing.T, dataDir, proxyAddr, controlAddr string, extra []string) (*server, error) {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, proxyAddr: proxyAddr, controlAddr: controlAddr}
	args := append([]string{"serve", "--dev", "--data-dir", dataDir, "--proxy-addr", proxyAddr, "--control-addr", controlAddr}, extra...)
	if err := s.launch(args...); err != nil {
		return nil, err
	}
	if err := s.awaitReady(&http.Client{Timeout: 2 * time.Second}, "http://"+controlAddr+"/readyz"); err != nil {
		return nil, err
	}
	return s, nil
}

// retryPortClash calls start until it succeeds. An error saying a port was
// taken, by another process between choosing and binding it, gets two more
// tries; attempt counts them from 1.
func retryPortClash(t *testing.T, start func(attempt int) (*server, error)) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := start(attempt)
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// startConfigured runs `elevate serve --config` (no --dev) with config,
// in which PROXY_ADDR, CONTROL_ADDR and DATA_DIR stand for the server's
// free ports and temp data dir. It does not wait until it is ready.
func startConfigured(t *testing.T, config string) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), proxyAddr: freeAddr(t), controlAddr: freeAddr(t)}
	cfg := filepath.Join(s.dataDir, "elevate.yaml")
	config = strings.NewReplacer("PROXY_ADDR", s.proxyAddr, "CONTROL_ADDR", s.controlAddr, "DATA_DIR", s.dataDir).Replace(config)
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	require.NoError(t, s.launch("serve", "--config", cfg))
	return s
}

// launch starts the binary with args as s's process, its output kept in
// s.stdout and s.stderr; s.stop ends it when the test ends.
func (s *server) launch(args ...string) error {
	s.stdout, s.stderr, s.exited = &lockedBuffer{}, &lockedBuffer{}, make(chan error, 1)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting elevate: %w", err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	s.t.Cleanup(s.stop)
	return nil
}

// awaitReady polls url, a /readyz, with client until it answers 200. It
// gives up when the process exits first, or after 30 s, stopping it.
func (s *server) awaitReady(client *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("elevate exited before ready: %v\nstderr:\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("elevate not ready in time\nstderr:\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until s's /readyz answers 200.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	require.NoError(t, s.awaitReady(http.DefaultClient, "http://"+s.controlAddr+"/readyz"))
}

func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if strings.Contains(s.stderr.String(), "WARNING: DATA RACE") {
		s.t.Errorf("the race detector fired in elevate:\n%s", s.stderr.String())
	}
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// result of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// runCommand runs cmd to completion and returns what it wrote and its exit
// code; a command that cannot be run at all fails the test.
func runCommand(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err, "running %s", cmd)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// cli runs the elevate binary as a user would, against s.
func (s *server) cli(token string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "ELEVATE_SERVER=http://"+s.controlAddr, "ELEVATE_TOKEN="+token)
	cmd.Dir = s.dataDir
	return runCommand(s.t, cmd)
}

// ok runs the CLI and requires success.
func (s *server) ok(token string, args ...string) string {
	s.t.Helper()
	r := s.cli(token, args...)
	require.Equal(s.t, 0, r.code, "elevate %v failed: %s", args, r.stderr)
	return r.stdout
}

// token mints a dev token through the CLI.
func (s *server) token(args ...string) string {
	s.t.Helper()
	return strings.TrimSpace(s.ok("", append([]string{"token", "--data-dir", s.dataDir}, args...)...))
}

// call sends one HTTP request and returns status, headers and body.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

func do(t *testing.T, method, url, token string, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// rawRequest writes bytes on a fresh connection and reads the status line,
// for request shapes net/http's client will not send.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	b := make([]byte, 4096)
	n, _ := io.ReadAtLeast(c, b, 12)
	return string(b[:n])
}

// auditRecords reads DATA_DIR/audit.log.
func (s *server) auditRecords() []map[string]any {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "audit.log"))
	require.NoError(s.t, err)
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(s.t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// handedOut are the ports freeAddr has given in this process: the kernel
// may offer a port again as soon as its probe listener closes, and two
// listeners of one server (proxy and control) must never be given the
// same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freeAddr returns a loopback host:port that was free a moment ago and
// that no earlier call in this process returned.
func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOut.Lock()
		seen := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !seen {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
	}
}

// freeLoopbackPorts returns n distinct free loopback ports.
func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startEtcd runs a real one-member etcd in this test process; stop may be
// called any number of times.
func startEtcd(t *testing.T, opts ...etcdtest.Option) (stop func(), endpoint string) {
	t.Helper()
	e, endpoint, err := etcdtest.Start(t.TempDir(), "default", opts...)
	require.NoError(t, err)
	var once sync.Once
	stop = func() { once.Do(e.Close) }
	t.Cleanup(stop)
	return stop, endpoint
}

// issuer is a test-owned token issuer with a real RSA key.
type issuer struct {
	key     *rsa.PrivateKey
	pemFile string
}

func newIssuer(t *testing.T) issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "issuer.pem")
	require.NoError(t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	return issuer{key: k, pemFile: f}
}

func (i issuer) token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://idp.test", "aud": "elevate", "sub": sub, "groups": groups,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}).SignedString(i.key)
	require.NoError(t, err)
	return tok
}

// Tasks of the default bundle that several tests gate.
const (
	moveTask    = `Exchange\New-MoveRequest`
	journalTask = `Exchange\Remove-JournalRule`
)

// request runs `request new -q` and returns the id.
func (s *server) request(token string, args ...string) string {
	s.t.Helper()
	return strings.TrimSpace(s.ok(token, append([]string{"request", "new", "-q"}, args...)...))
}

// status reads request id as JSON.
func (s *server) status(token, id string) map[string]any {
	s.t.Helper()
	var m map[string]any
	require.NoError(s.t, json.Unmarshal([]byte(s.ok(token, "-o", "json", "request", "get", id)), &m))
	return m
}

// recorder is an upstream that remembers what reached it.
type recorder struct {
	mu   sync.Mutex
	last *http.Request
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.last = r.Clone(r.Context())
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

func (rc *recorder) got() *http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.last
}

// startBrokered runs elevate --dev with one more upstream, "rabbitmq",
// pointing at a recorder, with a basic credential that elevate holds.
func startBrokered(t *testing.T) (*server, *recorder, *httptest.Server) {
	t.Helper()
	rc := &recorder{}
	up := httptest.NewServer(rc)
	t.Cleanup(up.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "rabbitmq.secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`upstreams:
  - name: rabbitmq
    url: %s
    prefix: /rmq/
    hosts: [rabbitmq.elevate.test]
    credential: {type: basic, username: elevate-svc, value_file: %s}
    credential_params: [access_token]
`, up.URL, secret)), 0o600))
	return startDev(t, "--config", cfg), rc, up
}

// closedByServer reads c until the server closes it, and fails if that
// takes longer than bound.
func closedByServer(c net.Conn, bound time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(bound))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("the server kept the connection open for %s", bound)
	}
	return nil // EOF (err == nil) or reset: the server closed it
}

// programEnv is the test's environment without the variables that would
// change how the programs under test find their files, nodes or proxies.
func programEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "RABBITMQ_"), strings.HasPrefix(k, "ERL_"), strings.HasPrefix(k, "XDG_"),
			k == "HOME", strings.HasSuffix(strings.ToLower(k), "_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// background is a program the test started and stops at cleanup.
type background struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan error
}

// startBackground starts a program in its own process group, its output
// going to dir/logName.
func startBackground(t *testing.T, env []string, dir, logName, name string, args ...string) *background {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, logName))
	require.NoError(t, err)
	d := &background{cmd: exec.Command(name, args...), log: logf, exited: make(chan error, 1)}
	d.cmd.Env, d.cmd.Dir = env, dir
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group, so that cleanup reaches the children too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, d.cmd.Start())
	go func() { d.exited <- d.cmd.Wait(); logf.Close() }()
	return d
}

// running reports whether the program has not exited yet.
func (d *background) running() bool {
	select {
	case err := <-d.exited:
		d.exited <- err
		return false
	default:
		return true
	}
}

// wait waits at most timeout for the program to exit.
func (d *background) wait(timeout time.Duration) bool {
	select {
	case err := <-d.exited:
		d.exited <- err
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill ends the program's process group: SIGTERM, then SIGKILL.
func (d *background) kill() {
	if !d.running() {
		return
	}
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if !d.wait(10 * time.Second) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		d.wait(10 * time.Second)
	}
}

// output is what the program wrote so far.
func (d *background) output() string {
	b, _ := os.ReadFile(d.log.Name())
	return string(b)
}

// The fail-closed matrix's fixtures (failclosed_test.go), which the cluster
// tests share: an upstream that counts, a grant for moveTask, the gated
// call and the read, and the refusals of a lost dependency.

// The calls of the matrix, on the "exchange" upstream: moving a mailbox is
// gated (moveTask), listing mailboxes needs no grant.
const (
	fcMovePath = "/mailboxes/alice/move-requests"
	fcReadPath = "/mailboxes"
)

// fcUpstream answers every call with 200 and counts the calls that reached
// it, by method and path.
type fcUpstream struct {
	url  string
	mu   sync.Mutex
	seen map[string]int
}

func newFCUpstream(t *testing.T) *fcUpstream {
	t.Helper()
	u := &fcUpstream{seen: map[string]int{}}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *fcUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen[r.Method+" "+r.URL.Path]++
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

// moves counts the gated calls forwarded; reads the reads.
func (u *fcUpstream) moves() int { return u.count("POST " + fcMovePath) }
func (u *fcUpstream) reads() int { return u.count("GET " + fcReadPath) }

func (u *fcUpstream) count(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[key]
}

// fcActors are the callers of the matrix: an admin, bob who holds an
// approved grant for moveTask, and carol who holds none.
type fcActors struct {
	admin, bob, carol string
	requestID         string
}

// fcGrantMove turns gating on through s and gives bob a grant for moveTask.
func fcGrantMove(t *testing.T, s *server, iss issuer) fcActors {
	t.Helper()
	a := fcActors{admin: iss.token(t, "ada", "admins", "approvers"), bob: iss.token(t, "bob"), carol: iss.token(t, "carol")}
	s.ok(a.admin, "control", "enable", "--approvers", "approvers")
	s.ok(a.admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	a.requestID = strings.TrimSpace(s.ok(a.bob, "request", "new", "--task", moveTask, "--reason", "maintenance", "-q"))
	s.ok(a.admin, "request", "approve", a.requestID)
	return a
}

// fcMove sends the gated call through s; fcRead the call that needs no grant.
func (s *server) fcMove(t *testing.T, token string) reply {
	t.Helper()
	return do(t, "POST", "http://"+s.proxyAddr+"/exchange"+fcMovePath, token, "")
}

func (s *server) fcRead(t *testing.T, token string) reply {
	t.Helper()
	return do(t, "GET", "http://"+s.proxyAddr+"/exchange"+fcReadPath, token, "")
}

// fcRequireProblem checks a refusal: its status, its problem type and the
// decision id that names its audit record.
func fcRequireProblem(t *testing.T, rep reply, status int, slug string) {
	t.Helper()
	require.Equal(t, status, rep.status, string(rep.body))
	require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
	require.Equal(t, "urn:elevate:problem:"+slug, rep.json(t)["type"], string(rep.body))
	require.NotEmpty(t, rep.header.Get("Elevate-Decision-Id"))
}

// fcRefusesWhileDown runs the checks every row that loses state or audit
// shares: a gated call is refused with problem on each of down and never
// forwarded; a read is refused too by default (strict) and let through by
// the config switch named switchName (lenient). moves and reads are the
// upstream's counts before.
func fcRefusesWhileDown(t *testing.T, down []*server, strict, lenient *server, up *fcUpstream, a fcActors, moves, reads int, problem, switchName string) {
	t.Helper()
	t.Run("gated call refused, not forwarded", func(t *testing.T) {
		for _, s := range down {
			fcRequireProblem(t, s.fcMove(t, a.bob), http.StatusServiceUnavailable, problem)
		}
		require.Equal(t, moves, up.moves())
	})
	t.Run("read refused by default", func(t *testing.T) {
		fcRequireProblem(t, strict.fcRead(t, a.bob), http.StatusServiceUnavailable, problem)
		require.Equal(t, reads, up.reads())
	})
	t.Run("read allowed with "+switchName, func(t *testing.T) {
		require.Equal(t, http.StatusOK, lenient.fcRead(t, a.bob).status)
		require.Equal(t, reads+1, up.reads())
	})
}

// fcEtcdPut writes one key outside elevate's prefix.
func fcEtcdPut(t *testing.T, endpoint, key, value string) {
	t.Helper()
	cli := etcdtest.Client(t, endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, key, value)
	require.NoError(t, err)
}

// TestFreeAddrNeverRepeats: a server's two listeners are given two
// addresses by freeAddr; the kernel may offer a just-closed port again, so
// freeAddr itself must never hand out a port twice.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		a := freeAddr(t)
		require.False(t, seen[a], "freeAddr returned %s twice", a)
		seen[a] = true
	}
}
