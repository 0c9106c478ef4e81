// Package test holds end-to-end tests that build the real elevate binary and
// run it against real servers on loopback.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startDev runs `elevate serve --dev` on free ports with a temp data dir
// and waits until /readyz answers 200. A port taken by another process
// between choosing and binding it is chosen again.
func startDev(t *testing.T, extra ...string) *server {
	t.Helper()
	dataDir := t.TempDir()
	for attempt := 1; ; attempt++ {
		s, err := tryDev(t, dataDir, extra)
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

func tryDev(t *testing.T, dataDir string, extra []string) (*server, error) {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, proxyAddr: freeAddr(t), controlAddr: freeAddr(t),
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	args := append([]string{"serve", "--dev", "--data-dir", s.dataDir, "--proxy-addr", s.proxyAddr, "--control-addr", s.controlAddr}, extra...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	require.NoError(t, s.cmd.Start())
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.controlAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Cleanup(s.stop)
				return s, nil
			}
		}
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("elevate exited before ready: %v\nstderr:\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("elevate not ready in time\nstderr:\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// cli runs the elevate binary as a user would, against s.
func (s *server) cli(token string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "ELEVATE_SERVER=http://"+s.controlAddr, "ELEVATE_TOKEN="+token)
	cmd.Dir = s.dataDir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, nil
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(s.t, ok, "running elevate %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
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
