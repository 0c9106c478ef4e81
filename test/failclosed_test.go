// The fail-closed matrix. Threat: a part elevate depends on fails and the
// failure turns into an allow (the class of Envoy CVE-2023-27488, ext_authz
// failing open), or into a gate that stops answering at all. Each test is one
// row: the dependency fails while elevate runs, and the test states what a
// gated call (its grant held) and a read (a call that needs no grant) get,
// under the default configuration and, where a switch exists, with it on.
// Every refusal is also checked as "not forwarded": the upstream counts what
// reached it.
//
//   - TestFailClosedEtcdDown: etcd stops, then returns (extends
//     TestEtcdLostWhileRunning in etcd_test.go with reads,
//     proxy.reads_when_stale and recovery without restart);
//     TestFailClosedEtcdReturnsIdle: the same recovery with no write to etcd
//     afterwards.
//   - TestFailClosedEtcdSlow: every byte to and from etcd is held longer than
//     the freshness bound, and a grant is revoked meanwhile.
//   - TestFailClosedPolicyReload: SIGHUP with an invalid bundle keeps the
//     running one (extends TestPolicyReload in reload_test.go with each kind
//     of invalid bundle, gated calls, a valid fix, and a bundle that fails at
//     evaluation).
//   - TestFailClosedAuditFull: the audit log is on a full device
//     (proxy.reads_without_audit).
//   - TestFailClosedAuditRotationBlocked: the log fills later and cannot be
//     rotated; removing the obstacle restores service without restart.
//   - TestFailClosedJWKSUnreachableAtStart, TestFailClosedJWKSLost: an
//     issuer's JWKS URL fails at start or later; only that issuer's tokens
//     without a known key are refused.
//   - TestFailClosedOTLPDown: the trace collector is unreachable or never
//     answers; calls and shutdown do not wait for it.

package test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/rego"
)

// fcOptions are the settings of one elevate of the matrix.
type fcOptions struct {
	etcd              string // endpoint URL
	auditPath         string // default DATA_DIR/audit.log
	auditMaxBytes     int64  // 0: the default
	policyDir         string // empty: the embedded bundle
	readsWhenStale    bool
	readsWithoutAudit bool
}

// startFC runs `elevate serve --config` (no --dev) with iss as its one
// issuer and up as the "exchange" upstream, and waits until it is ready.
func startFC(t *testing.T, iss issuer, up *fcUpstream, o fcOptions) *server {
	t.Helper()
	auditPath := o.auditPath
	if auditPath == "" {
		auditPath = "DATA_DIR/audit.log"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `proxy_addr: PROXY_ADDR
control_addr: CONTROL_ADDR
data_dir: DATA_DIR
etcd:
  endpoints: [%s]
  start_timeout: 20s
identity:
  issuers:
    - issuer: https://idp.test
      audience: [elevate]
      pem_files: [%s]
      algorithms: [RS256]
audit:
  path: %s
  max_bytes: %d
proxy:
  reads_when_stale: %t
  reads_without_audit: %t
upstreams:
  - name: exchange
    url: %s
    prefix: /exchange/
`, o.etcd, iss.pemFile, auditPath, o.auditMaxBytes, o.readsWhenStale, o.readsWithoutAudit, up.url)
	if o.policyDir != "" {
		fmt.Fprintf(&b, "policy:\n  dir: %s\n", o.policyDir)
	}
	s := startConfigured(t, b.String())
	s.waitReady(t)
	return s
}

// newFCEtcd starts a one-member etcd in this test process that can be
// stopped and started again on the same directory and ports.
func newFCEtcd(t *testing.T) *etcdtest.Member {
	t.Helper()
	c, err := etcdtest.StartCluster(t.TempDir(), 1)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.Members()[0]
}

// fcLink is a TCP relay that passes every chunk of bytes on, in both
// directions, only once the current delay has passed since it arrived: a
// slow network between elevate and etcd. Order is kept.
type fcLink struct {
	ln     net.Listener
	target string
	delay  atomic.Int64
	done   chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func newFCLink(t *testing.T, target string) *fcLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &fcLink{ln: ln, target: target, done: make(chan struct{})}
	go l.serve()
	t.Cleanup(l.close)
	return l
}

func (l *fcLink) endpoint() string            { return "http://" + l.ln.Addr().String() }
func (l *fcLink) setDelay(d time.Duration)    { l.delay.Store(int64(d)) }
func (l *fcLink) currentDelay() time.Duration { return time.Duration(l.delay.Load()) }

func (l *fcLink) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		l.conns = append(l.conns, c, u)
		l.mu.Unlock()
		go l.pipe(u, c)
		go l.pipe(c, u)
	}
}

// pipe copies src to dst, each chunk held until its time.
func (l *fcLink) pipe(dst, src net.Conn) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	chunks := make(chan chunk, 1024)
	quit := make(chan struct{})
	defer func() {
		close(quit)
		dst.Close()
		src.Close()
	}()
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(l.currentDelay())}
				select {
				case chunks <- c:
				case <-quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		if wait := time.Until(c.due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-l.done:
				timer.Stop()
				return
			}
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

func (l *fcLink) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	conns := l.conns
	l.mu.Unlock()
	close(l.done)
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// TestFailClosedEtcdDown: etcd stops while elevate runs. Gated calls are
// refused with 503 and never forwarded; reads are refused too, unless
// proxy.reads_when_stale lets them through. When etcd returns, both work
// again without a restart.
func TestFailClosedEtcdDown(t *testing.T) {
	etcd := newFCEtcd(t)
	up := newFCUpstream(t)
	iss := newIssuer(t)
	strict := startFC(t, iss, up, fcOptions{etcd: etcd.Endpoint()})
	lenient := startFC(t, iss, up, fcOptions{etcd: etcd.Endpoint(), readsWhenStale: true})
	a := fcGrantMove(t, strict, iss)
	for _, s := range []*server{strict, lenient} {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, http.StatusOK, s.fcRead(t, a.bob).status)
	}

	etcd.Stop()
	for _, s := range []*server{strict, lenient} {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusServiceUnavailable },
			20*time.Second, 50*time.Millisecond, "the view goes stale once etcd is gone")
	}
	moves, reads := up.moves(), up.reads()

	fcRefusesWhileDown(t, []*server{strict, lenient}, strict, lenient, up, a, moves, reads, "state-unavailable", "reads_when_stale")
	t.Run("no grant: still refused as before", func(t *testing.T) {
		fcRequireProblem(t, lenient.fcMove(t, a.carol), http.StatusForbidden, "grant-required")
	})

	t.Run("recovers without restart", func(t *testing.T) {
		require.NoError(t, etcd.Start())
		// A write on the cluster: see TestFailClosedEtcdReturnsIdle for a
		// cluster that stays idle.
		fcEtcdPut(t, etcd.Endpoint(), "/activity/after-restart", "x")
		for _, s := range []*server{strict, lenient} {
			require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK },
				30*time.Second, 50*time.Millisecond, "stderr:\n%s", s.stderr)
			require.Equal(t, http.StatusOK, s.fcRead(t, a.bob).status)
		}
	})
}

// TestFailClosedEtcdReturnsIdle: etcd stops and returns, and nothing is
// written to it afterwards. elevate must confirm its view again on its own:
// the client library resumes the view's watch past etcd's revision when
// nothing was written, and etcd sends no progress to such a watch, so the
// view drops a watch that stays silent while etcd answers, and lists again.
func TestFailClosedEtcdReturnsIdle(t *testing.T) {
	etcd := newFCEtcd(t)
	up := newFCUpstream(t)
	iss := newIssuer(t)
	servers := []*server{startFC(t, iss, up, fcOptions{etcd: etcd.Endpoint()}), startFC(t, iss, up, fcOptions{etcd: etcd.Endpoint()})}
	a := fcGrantMove(t, servers[0], iss)
	for _, s := range servers {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	}
	etcd.Stop()
	for _, s := range servers {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusServiceUnavailable }, 20*time.Second, 50*time.Millisecond)
	}
	require.NoError(t, etcd.Start())
	for _, s := range servers {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK },
			30*time.Second, 50*time.Millisecond, "the view is confirmed again without a write")
	}
}

// TestFailClosedEtcdSlow: the link to etcd holds every byte for longer
// than the freshness bound (3 s), so the view can no longer be confirmed.
// Gated calls get 503 as with etcd down, reads too unless
// proxy.reads_when_stale; a grant revoked meanwhile (by another replica
// with a fast link) is never honoured: no call of it is allowed from then on,
// while slow or after the link recovers.
func TestFailClosedEtcdSlow(t *testing.T) {
	_, endpoint := startEtcd(t)
	link := newFCLink(t, strings.TrimPrefix(endpoint, "http://"))
	up := newFCUpstream(t)
	iss := newIssuer(t)
	direct := startFC(t, iss, up, fcOptions{etcd: endpoint})
	strict := startFC(t, iss, up, fcOptions{etcd: link.endpoint()})
	lenient := startFC(t, iss, up, fcOptions{etcd: link.endpoint(), readsWhenStale: true})
	// Cleanups run last first: the link is fast again before the servers stop.
	t.Cleanup(func() { link.setDelay(0) })
	a := fcGrantMove(t, direct, iss)
	slowed := []*server{strict, lenient}
	for _, s := range slowed {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	}

	link.setDelay(2 * time.Second) // each way: a round trip takes 4 s
	for _, s := range slowed {
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusServiceUnavailable },
			20*time.Second, 50*time.Millisecond, "freshness cannot be confirmed over the slow link")
	}
	moves, reads := up.moves(), up.reads()

	fcRefusesWhileDown(t, slowed, strict, lenient, up, a, moves, reads, "state-unavailable", "reads_when_stale")

	t.Run("revoked while slow: never allowed again", func(t *testing.T) {
		r := direct.cli(a.admin, "request", "revoke", a.requestID, "--comment", "no longer needed")
		require.Equal(t, 0, r.code, r.stderr)
		fcRequireProblem(t, direct.fcMove(t, a.bob), http.StatusForbidden, "grant-required")
		moves := up.moves()
		allowed := 0
		judge := func(s *server) int {
			rep := s.fcMove(t, a.bob)
			if rep.status < 300 {
				allowed++
			}
			return rep.status
		}
		// Still slow: refused, whether or not the revocation has arrived.
		for _, s := range slowed {
			for range 3 {
				require.Contains(t, []int{http.StatusServiceUnavailable, http.StatusForbidden}, judge(s))
			}
		}
		// The link recovers: the view catches up with the revocation
		// before it is confirmed fresh again.
		link.setDelay(0)
		for _, s := range slowed {
			require.Eventually(t, func() bool { return judge(s) == http.StatusForbidden },
				30*time.Second, 20*time.Millisecond, "stderr:\n%s", s.stderr)
			fcRequireProblem(t, s.fcMove(t, a.bob), http.StatusForbidden, "grant-required")
			require.Equal(t, http.StatusOK, s.fcRead(t, a.bob).status)
		}
		require.Zero(t, allowed, "a revoked grant was honoured")
		require.Equal(t, moves, up.moves(), "nothing gated was forwarded after the revocation")
	})
}

// fcCopyBundle writes the embedded default bundle to a new directory.
func fcCopyBundle(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, fs.WalkDir(rego.Bundle, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, p), 0o755)
		}
		b, err := fs.ReadFile(rego.Bundle, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	}))
	return dir
}

// fcLastLine returns the last line of out that contains marker.
func fcLastLine(out, marker string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], marker) {
			return lines[i]
		}
	}
	return ""
}

// TestFailClosedPolicyReload: SIGHUP with a bundle that cannot be loaded
// keeps the running bundle (calls are judged exactly as before) and logs
// why; a valid bundle then replaces it. A bundle that fails on the calls the
// load-time proof tries cannot be loaded; one that loads but fails at
// evaluation refuses every call with 500, forwarding nothing.
// TestPolicyReload (reload_test.go) covers a valid change and one syntax
// error on reads.
func TestFailClosedPolicyReload(t *testing.T) {
	bundle := fcCopyBundle(t)
	_, endpoint := startEtcd(t)
	up := newFCUpstream(t)
	iss := newIssuer(t)
	s := startFC(t, iss, up, fcOptions{etcd: endpoint, policyDir: bundle})
	a := fcGrantMove(t, s, iss)
	require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)

	// hup sends SIGHUP and waits for one more log line with marker.
	hup := func(t *testing.T, marker string) {
		t.Helper()
		want := strings.Count(s.stderr.String(), marker) + 1
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
		require.Eventually(t, func() bool { return strings.Count(s.stderr.String(), marker) >= want },
			10*time.Second, 20*time.Millisecond, "stderr:\n%s", s.stderr)
	}
	judgedAsBefore := func(t *testing.T) {
		t.Helper()
		moves, reads := up.moves(), up.reads()
		require.Equal(t, http.StatusOK, s.fcMove(t, a.bob).status, "the grant holder's call is allowed")
		fcRequireProblem(t, s.fcMove(t, a.carol), http.StatusForbidden, "grant-required")
		require.Equal(t, http.StatusOK, s.fcRead(t, a.carol).status, "a read needs no grant")
		require.Equal(t, moves+1, up.moves())
		require.Equal(t, reads+1, up.reads())
	}
	add := func(name, src string) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			p := filepath.Join(bundle, name)
			require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
			return func() { require.NoError(t, os.Remove(p)) }
		}
	}
	mainRego := filepath.Join(bundle, "elevate.rego")

	const refused = "policy reload refused"
	for _, tc := range []struct {
		name  string
		apply func(t *testing.T) (undo func())
		logs  string // part of the logged cause
	}{
		{"syntax error", add("broken.rego", "package elevate\n\ndeny contains if {\n"), "broken.rego"},
		{"unsafe variable", add("unsafe.rego", "package elevate\n\ndeny contains reason if reason == nowhere\n"), "unsafe"},
		{"reserved state package", add("state.rego", "package elevate_state\n\ncontrol := {\"enabled\": false}\n"), "reserved"},
		{"data not an object", add("data.json", "[1, 2]"), "data must be an object"},
		{"evaluation error on every call", add("faulty.rego", "package elevate\n\ndeny contains \"never\" if to_number(input.subject.id) > 0\n"), "faulty.rego:3"},
		{"decision rule missing", func(t *testing.T) func() {
			// kubernetes_gate.rego builds on elevate.rego's rules: both go.
			gate := filepath.Join(bundle, "kubernetes_gate.rego")
			require.NoError(t, os.Rename(mainRego, mainRego+".off"))
			require.NoError(t, os.Rename(gate, gate+".off"))
			return func() {
				require.NoError(t, os.Rename(mainRego+".off", mainRego))
				require.NoError(t, os.Rename(gate+".off", gate))
			}
		}, "no rule defines data.elevate.decision"},
	} {
		t.Run("invalid/"+strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			undo := tc.apply(t)
			defer undo()
			hup(t, refused)
			require.Contains(t, fcLastLine(s.stderr.String(), refused), tc.logs, "the cause is logged")
			judgedAsBefore(t)
		})
	}

	const reloaded = "policy bundle reloaded"
	t.Run("valid fix loaded", func(t *testing.T) {
		undo := add("freeze.rego", "package elevate\n\ndeny contains \"moves are frozen\" if input.method == \"POST\"\n")(t)
		hup(t, reloaded)
		moves := up.moves()
		fcRequireProblem(t, s.fcMove(t, a.bob), http.StatusForbidden, "denied")
		require.Equal(t, moves, up.moves())
		require.Equal(t, http.StatusOK, s.fcRead(t, a.bob).status)
		undo()
		hup(t, reloaded)
		judgedAsBefore(t)
	})

	t.Run("evaluation error refuses every call", func(t *testing.T) {
		// Loads (it compiles, and the load-time proof calls as another
		// subject), then fails on every call by bob: to_number("bob").
		undo := add("faulty.rego", "package elevate\n\ndeny contains \"never\" if {\n\tinput.subject.id == \"bob\"\n\tto_number(input.subject.id) > 0\n}\n")(t)
		hup(t, reloaded)
		moves, reads := up.moves(), up.reads()
		fcRequireProblem(t, s.fcMove(t, a.bob), http.StatusInternalServerError, "policy-error")
		fcRequireProblem(t, s.fcRead(t, a.bob), http.StatusInternalServerError, "policy-error")
		require.Equal(t, moves, up.moves())
		require.Equal(t, reads, up.reads())
		undo()
		hup(t, reloaded)
		judgedAsBefore(t)
	})
}

// fcFullDevice returns an audit log path that is a symlink to /dev/full:
// every write fails with "no space left on device".
func fcFullDevice(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	p := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.Symlink("/dev/full", p))
	return p
}

// TestFailClosedAuditFull: the audit log cannot be written (disk full).
// A gated call is refused with 503 audit-unavailable and not forwarded, so
// nothing runs without its record; reads are refused too, unless
// proxy.reads_without_audit lets them through. Refusals stay refusals.
func TestFailClosedAuditFull(t *testing.T) {
	_, endpoint := startEtcd(t)
	up := newFCUpstream(t)
	iss := newIssuer(t)
	direct := startFC(t, iss, up, fcOptions{etcd: endpoint})
	strict := startFC(t, iss, up, fcOptions{etcd: endpoint, auditPath: fcFullDevice(t)})
	lenient := startFC(t, iss, up, fcOptions{etcd: endpoint, auditPath: fcFullDevice(t), readsWithoutAudit: true})
	a := fcGrantMove(t, direct, iss)
	full := []*server{strict, lenient}
	for _, s := range full {
		// grant-required until the grant arrives; then the allow cannot be recorded.
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusServiceUnavailable },
			10*time.Second, 20*time.Millisecond)
	}
	moves, reads := up.moves(), up.reads()

	fcRefusesWhileDown(t, full, strict, lenient, up, a, moves, reads, "audit-unavailable", "reads_without_audit")
	t.Run("refusals stay refusals", func(t *testing.T) {
		for _, s := range full {
			fcRequireProblem(t, s.fcMove(t, a.carol), http.StatusForbidden, "grant-required")
		}
		require.Equal(t, moves, up.moves())
	})
	t.Run("failure logged without secrets", func(t *testing.T) {
		for _, s := range full {
			out := s.stderr.String()
			require.Contains(t, fcLastLine(out, "audit write failed"), "no space left on device")
			require.NotContains(t, out, a.bob)
		}
	})
	t.Run("unaffected replica keeps working", func(t *testing.T) {
		require.Equal(t, http.StatusOK, direct.fcMove(t, a.bob).status)
		require.Equal(t, moves+1, up.moves())
	})
}

// TestFailClosedAuditRotationBlocked: the audit log fills later and its
// next rotated file cannot be created (the name is taken by a directory).
// From then on calls are refused with 503 and not forwarded; once the
// obstacle is removed they work again without a restart, and the hash
// chain has no gap.
func TestFailClosedAuditRotationBlocked(t *testing.T) {
	_, endpoint := startEtcd(t)
	up := newFCUpstream(t)
	iss := newIssuer(t)
	direct := startFC(t, iss, up, fcOptions{etcd: endpoint})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	s := startFC(t, iss, up, fcOptions{etcd: endpoint, auditPath: logPath, auditMaxBytes: 4096})
	a := fcGrantMove(t, direct, iss)
	require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)

	// Take the names of the next rotated files. The outcome record of the
	// last call may still rotate once on its own: an existing name is
	// skipped, and the next one is taken.
	rotated, err := filepath.Glob(logPath + ".*")
	require.NoError(t, err)
	var obstacles []string
	for n := len(rotated) + 1; n <= len(rotated)+3; n++ {
		p := fmt.Sprintf("%s.%d", logPath, n)
		if err := os.Mkdir(p, 0o700); err == nil {
			obstacles = append(obstacles, p)
		} else {
			require.ErrorIs(t, err, fs.ErrExist)
		}
	}
	require.NotEmpty(t, obstacles)

	// Allowed until the file is full.
	status := 0
	for range 200 {
		if status = s.fcMove(t, a.bob).status; status != http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusServiceUnavailable, status, "the log filled up")
	moves, reads := up.moves(), up.reads()

	t.Run("gated call refused, not forwarded", func(t *testing.T) {
		fcRequireProblem(t, s.fcMove(t, a.bob), http.StatusServiceUnavailable, "audit-unavailable")
		require.Equal(t, moves, up.moves())
	})
	t.Run("read refused by default", func(t *testing.T) {
		fcRequireProblem(t, s.fcRead(t, a.bob), http.StatusServiceUnavailable, "audit-unavailable")
		require.Equal(t, reads, up.reads())
	})
	t.Run("failure logged", func(t *testing.T) {
		require.Contains(t, fcLastLine(s.stderr.String(), "audit write failed"), "already exists")
	})
	t.Run("recovers without restart", func(t *testing.T) {
		for _, p := range obstacles {
			require.NoError(t, os.Remove(p))
		}
		require.Eventually(t, func() bool { return s.fcMove(t, a.bob).status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, http.StatusOK, s.fcRead(t, a.bob).status)
		require.Equal(t, moves+1, up.moves())
		r := s.cli("", "audit", "verify", logPath)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "chain intact")
	})
}

// fcJWKS serves a JWK Set of RSA keys by kid.
type fcJWKS struct {
	*httptest.Server
	keys map[string]*rsa.PublicKey
}

func newFCJWKS(t *testing.T, keys map[string]*rsa.PublicKey) *fcJWKS {
	t.Helper()
	j := &fcJWKS{keys: keys}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		set := struct {
			Keys []map[string]string `json:"keys"`
		}{}
		for kid, k := range j.keys {
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(j.Close)
	return j
}

// fcJWKSToken signs a token of the issuer https://jwks.test with key, naming kid.
func fcJWKSToken(t *testing.T, key *rsa.PrivateKey, kid, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://jwks.test", "aud": "elevate", "sub": sub,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// fcJWKSConfig is a --dev config file adding the issuer https://jwks.test.
func fcJWKSConfig(t *testing.T, jwksURL string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`identity:
  issuers:
    - issuer: https://jwks.test
      audience: [elevate]
      jwks_url: %s
      refresh_interval: 1s
      algorithms: [RS256]
`, jwksURL)), 0o600))
	return cfg
}

// TestFailClosedJWKSUnreachableAtStart: an issuer whose JWKS URL cannot be
// fetched at start-up (closed port, an error status, not a JWK Set) has no
// keys. elevate starts, refuses that issuer's tokens with 401 and logs why;
// other issuers are unaffected. Once the URL serves the set, the issuer's
// tokens are accepted without a restart.
func TestFailClosedJWKSUnreachableAtStart(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	set := newFCJWKS(t, map[string]*rsa.PublicKey{"k1": &key.PublicKey})
	var serving atomic.Bool
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if serving.Load() {
			set.Config.Handler.ServeHTTP(w, r)
			return
		}
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>not a key set</html>")
	}))
	t.Cleanup(garbage.Close)

	for _, tc := range []struct {
		name, url string
		recover   func() // makes the URL serve the set, if the case can
	}{
		{"closed-port", "http://" + freeAddr(t) + "/jwks.json", nil},
		{"not-a-key-set", garbage.URL + "/jwks.json", nil},
		{"error-status", unavailable.URL + "/jwks.json", func() { serving.Store(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startDev(t, "--config", fcJWKSConfig(t, tc.url))
			fcRequireProblem(t, s.fcRead(t, fcJWKSToken(t, key, "k1", "erin")), http.StatusUnauthorized, "unauthenticated")
			require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), "JWKS fetch failed") },
				10*time.Second, 20*time.Millisecond, "the failure is logged")
			require.Equal(t, http.StatusOK, s.fcRead(t, s.token("--sub", "dave")).status, "other issuers are unaffected")
			if tc.recover == nil {
				return
			}
			tc.recover()
			require.Eventually(t, func() bool { return s.fcRead(t, fcJWKSToken(t, key, "k1", "erin")).status == http.StatusOK },
				15*time.Second, 50*time.Millisecond, "the issuer's keys arrive with a later fetch")
		})
	}
}

// TestFailClosedJWKSLost: the JWKS endpoint goes away after start. Keys
// already fetched keep verifying; an unknown kid, or a known kid on a
// signature by another key, is refused with 401; other issuers are
// unaffected.
func TestFailClosedJWKSLost(t *testing.T) {
	k1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	k2, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	jwks := newFCJWKS(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	s := startDev(t, "--config", fcJWKSConfig(t, jwks.URL+"/jwks.json"))
	devToken := s.token("--sub", "dave")
	require.Equal(t, http.StatusOK, s.fcRead(t, fcJWKSToken(t, k1, "k1", "erin")).status)

	jwks.Close()
	require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), "JWKS refresh failed") },
		15*time.Second, 50*time.Millisecond, "a refresh fails")

	t.Run("known kid keeps working", func(t *testing.T) {
		// A new token: not served from the verification cache.
		require.Equal(t, http.StatusOK, s.fcRead(t, fcJWKSToken(t, k1, "k1", "frank")).status)
	})
	t.Run("unknown kid refused", func(t *testing.T) {
		fcRequireProblem(t, s.fcRead(t, fcJWKSToken(t, k2, "k2", "frank")), http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("known kid with another key refused", func(t *testing.T) {
		fcRequireProblem(t, s.fcRead(t, fcJWKSToken(t, k2, "k1", "frank")), http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("other issuers unaffected", func(t *testing.T) {
		require.Equal(t, http.StatusOK, s.fcRead(t, devToken).status)
	})
}

// fcSilentCollector accepts connections and never answers on them.
func fcSilentCollector(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestFailClosedOTLPDown: the OTLP collector is down (closed port) or
// hangs (accepts, never answers). Calls keep flowing (200 sequential calls,
// each bounded by a client timeout) and SIGTERM stops elevate within 15 s.
func TestFailClosedOTLPDown(t *testing.T) {
	for _, tc := range []struct{ name, endpoint string }{
		{"closed-port", "http://" + freeAddr(t)},
		{"silent-collector", fcSilentCollector(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
				"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_SDK_DISABLED"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
			t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100") // ms: metric exports keep trying too
			s := startDev(t)
			admin := s.token("--sub", "ada", "--groups", "admins,approvers")
			bob := s.token("--sub", "bob")
			s.ok(admin, "control", "enable", "--approvers", "approvers")
			s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
			id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", moveTask, "--reason", "maintenance", "-q"))
			s.ok(admin, "request", "approve", id)

			cl := &http.Client{Timeout: 10 * time.Second}
			call := func(method, path string) int {
				req, err := http.NewRequest(method, "http://"+s.proxyAddr+"/exchange"+path, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+bob)
				resp, err := cl.Do(req)
				require.NoError(t, err, "a call waited on the collector")
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			require.Eventually(t, func() bool { return call("POST", fcMovePath) == http.StatusCreated }, 10*time.Second, 20*time.Millisecond)
			for i := range 200 {
				if i%2 == 0 {
					require.Equal(t, http.StatusOK, call("GET", fcReadPath), "call %d", i)
				} else {
					require.Equal(t, http.StatusCreated, call("POST", fcMovePath), "call %d", i)
				}
			}

			require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
			select {
			case err := <-s.exited:
				require.NoError(t, err, "a clean exit; stderr:\n%s", s.stderr)
			case <-time.After(15 * time.Second):
				t.Fatalf("elevate did not stop within 15s of SIGTERM\nstderr:\n%s", s.stderr)
			}
		})
	}
}
