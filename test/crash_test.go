package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// queueTask is the gated catalog task behind every call of the crash test.
const queueTask = `RabbitMQ\New-Queue`

// crashUpstream is an upstream that remembers every call that reached it,
// as "METHOD PATH".
type crashUpstream struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (u *crashUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen[r.Method+" "+r.URL.EscapedPath()] = true
	u.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// received lists the calls that reached the upstream so far.
func (u *crashUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.seen))
	for k := range u.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// putQueue declares the queue crash/NAME through elevate's reverse proxy
// at addr and returns the status.
func putQueue(cl *http.Client, addr, token, name string) (int, error) {
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/rmq/api/queues/crash/"+name, strings.NewReader(`{"durable":true}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// crashCallers send gated calls through the proxy from several goroutines,
// each with a queue name of its own, and keep going while elevate is down.
type crashCallers struct {
	addr    atomic.Pointer[string] // the proxy address to call
	token   string
	next    atomic.Int64 // last queue number handed out
	ok      atomic.Int64 // calls answered 201
	refused atomic.Int64 // calls answered with anything else
	failed  atomic.Int64 // calls without an answer
	// pause is held for reading around every call; holding it for writing
	// waits for the calls in flight and holds back new ones.
	pause sync.RWMutex
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	tr    *http.Transport
}

func startCallers(addr, token string, n int) *crashCallers {
	c := &crashCallers{token: token, stop: make(chan struct{}),
		tr: &http.Transport{MaxIdleConnsPerHost: n}}
	c.addr.Store(&addr)
	for range n {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

func (c *crashCallers) loop() {
	defer c.wg.Done()
	cl := &http.Client{Timeout: 5 * time.Second, Transport: c.tr}
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.pause.RLock()
		name := fmt.Sprintf("c-%d", c.next.Add(1))
		status, err := putQueue(cl, *c.addr.Load(), c.token, name)
		c.pause.RUnlock()
		switch {
		case err == nil && status == http.StatusCreated:
			c.ok.Add(1)
			continue
		case err == nil:
			c.refused.Add(1)
		default:
			c.failed.Add(1)
		}
		time.Sleep(10 * time.Millisecond) // elevate is down or not ready yet
	}
}

// halt stops the callers and waits for them. It may be called again.
func (c *crashCallers) halt() {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.tr.CloseIdleConnections()
	})
}

// restartDev starts elevate again on old's data dir, on old's ports, or on
// new ones when another process took them in the meantime.
func restartDev(t *testing.T, old *server, extra []string) *server {
	t.Helper()
	return retryPortClash(t, func(attempt int) (*server, error) {
		if attempt == 1 {
			return serveDevAt(t, old.dataDir, old.proxyAddr, old.controlAddr, extra)
		}
		return serveDevAt(t, old.dataDir, freeAddr(t), freeAddr(t), extra)
	})
}

// allowedCalls reads the current audit log and then every rotated file
// (in that order, so that a rotation in between loses nothing) and returns
// the "METHOD PATH" of each call record with event "allowed". Only complete
// lines are read.
func allowedCalls(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	current := filepath.Join(dataDir, "audit.log")
	files := []string{current}
	rotated, err := filepath.Glob(current + ".*")
	require.NoError(t, err)
	for _, f := range rotated {
		if !strings.HasSuffix(f, ".lock") {
			files = append(files, f)
		}
	}
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(b[:bytes.LastIndexByte(b, '\n')+1]))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var rec struct{ Kind, Event, Method, Path string }
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "%s: %s", f, sc.Text())
			if rec.Kind == "call" && rec.Event == "allowed" {
				out[rec.Method+" "+rec.Path] = true
			}
		}
		require.NoError(t, sc.Err())
	}
	return out
}

// checkDurable pauses the callers and requires that every call the
// upstream received has its "allowed" record, and that the chain of the
// whole log verifies. It returns the number of calls received and the
// number of "allowed" records.
func checkDurable(t *testing.T, s *server, up *crashUpstream, callers *crashCallers) (received, records int) {
	t.Helper()
	callers.pause.Lock()
	defer callers.pause.Unlock()
	got := up.received()
	recs := allowedCalls(t, s.dataDir)
	var missing []string
	for _, call := range got {
		if !recs[call] {
			missing = append(missing, call)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d calls the upstream received have no durable audit record, e.g. %s",
			len(missing), len(got), strings.Join(missing[:min(len(missing), 5)], ", "))
	}
	// Given the current file alone, verify checks its whole rotated set,
	// oldest file first.
	r := s.cli("", "audit", "verify", "--data-dir", s.dataDir)
	require.Equal(t, 0, r.code, "audit verify: %s%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "chain intact")
	return len(got), len(recs)
}

// TestCrash kills elevate with SIGKILL ten times while gated calls flow.
// After every restart each call the upstream received has its durable
// audit record and `elevate audit verify` passes. A call recorded but never
// received (killed between the record and the forward) is fine; a call
// received but not recorded is not.
func TestCrash(t *testing.T) {
	const kills = 10
	up := &crashUpstream{seen: map[string]bool{}}
	hs := httptest.NewServer(up)
	t.Cleanup(hs.Close)
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	// A small max_bytes makes the log rotate during the test.
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`upstreams:
  - name: rabbitmq
    url: %s
    prefix: /rmq/
audit:
  max_bytes: 65536
`, hs.URL)), 0o600))
	extra := []string{"--config", cfg}
	s := startDev(t, extra...)

	// A grant for the gated task, requested and approved as users do.
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob", "--ttl", "2h")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", queueTask, "--approval", "manual")
	probeClient := &http.Client{Timeout: 5 * time.Second}
	probes := 0
	probe := func() int {
		probes++
		status, _ := putQueue(probeClient, s.proxyAddr, bob, fmt.Sprintf("probe-%d", probes))
		return status
	}
	require.Eventually(t, func() bool { return probe() == http.StatusForbidden }, 5*time.Second, 20*time.Millisecond)
	id := s.request(bob, "--task", queueTask, "--reason", "crash drill", "--duration", "1h")
	s.ok(admin, "request", "approve", id)
	require.Eventually(t, func() bool { return probe() == http.StatusCreated }, 5*time.Second, 20*time.Millisecond)

	callers := startCallers(s.proxyAddr, bob, 4)
	defer callers.halt()
	srv := s
	start := time.Now()
	for i := 1; i <= kills; i++ {
		base := callers.ok.Load()
		require.Eventually(t, func() bool { return callers.ok.Load() >= base+10 }, 20*time.Second, 5*time.Millisecond,
			"no calls got through before kill %d; stderr:\n%s", i, srv.stderr)
		require.NoError(t, srv.cmd.Process.Kill())
		select {
		case <-srv.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("elevate still running 10s after SIGKILL %d", i)
		}
		srv = restartDev(t, srv, extra)
		callers.addr.Store(&srv.proxyAddr)
		checkDurable(t, srv, up, callers)
	}
	callers.halt()
	received, records := checkDurable(t, srv, up, callers)
	rotated, _ := filepath.Glob(filepath.Join(srv.dataDir, "audit.log.[0-9]*"))
	t.Logf("kills: %d in %s; calls sent: %d, answered 201: %d, refused: %d, unanswered: %d; received by the upstream: %d; allowed records: %d; rotated audit files: %d",
		kills, time.Since(start).Round(time.Millisecond), callers.next.Load(), callers.ok.Load(), callers.refused.Load(), callers.failed.Load(),
		received, records, len(rotated))
}
