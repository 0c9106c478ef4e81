package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const configTemplate = `
proxy_addr: PROXY_ADDR
control_addr: CONTROL_ADDR
data_dir: DATA_DIR
etcd:
  endpoints: [%s]
  start_timeout: %s
identity:
  issuers:
    - issuer: https://idp.test
      audience: [elevate]
      pem_files: [%s]
      algorithms: [RS256]
audit:
  path: DATA_DIR/audit.log
upstreams:
  - name: exchange
    url: %s
    prefix: /exchange/
`

// TestEtcdUnreachableAtStart: a clear error, never ready, non-zero exit
// after a bounded wait.
func TestEtcdUnreachableAtStart(t *testing.T) {
	iss := newIssuer(t)
	s := startConfigured(t, fmt.Sprintf(configTemplate, "http://"+freeAddr(t), "2s", iss.pemFile, "http://127.0.0.1:1"))
	select {
	case err := <-s.exited:
		require.Error(t, err)
		require.Contains(t, s.stderr.String(), "etcd")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(s.stderr.String()), "\n")+1, "one line: %s", s.stderr)
	case <-time.After(20 * time.Second):
		t.Fatal("elevate kept waiting for etcd")
	}
	_, err := http.Get("http://" + s.controlAddr + "/readyz")
	require.Error(t, err, "nothing listens after exit")
}

// TestNotReadyWhileEtcdIsAwaited: while elevate waits for etcd at start,
// the control listener already answers: alive, not ready.
func TestNotReadyWhileEtcdIsAwaited(t *testing.T) {
	iss := newIssuer(t)
	s := startConfigured(t, fmt.Sprintf(configTemplate, "http://"+freeAddr(t), "30s", iss.pemFile, "http://127.0.0.1:1"))
	var rep reply
	hc := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool {
		resp, err := hc.Get("http://" + s.controlAddr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		rep = reply{status: resp.StatusCode}
		return true
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusServiceUnavailable, rep.status)
	rp := do(t, "GET", "http://"+s.controlAddr+"/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, rp.status)
	require.True(t, strings.HasSuffix(rp.json(t)["type"].(string), "not-ready"), "%s", rp.body)
	require.Equal(t, http.StatusOK, do(t, "GET", "http://"+s.controlAddr+"/healthz", "", "").status)
	require.Equal(t, http.StatusServiceUnavailable, do(t, "GET", "http://"+s.controlAddr+"/v1/whoami", "", "").status)
	hc.Timeout = 500 * time.Millisecond
	_, err := hc.Get("http://" + s.proxyAddr + "/exchange/mailboxes")
	require.Error(t, err, "the proxy listener serves only once ready")
}

// TestEtcdLostWhileRunning: gated calls answer 503 and are never
// forwarded once the grant state cannot be confirmed.
func TestEtcdLostWhileRunning(t *testing.T) {
	stopEtcd, endpoint := startEtcd(t)
	var received atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	iss := newIssuer(t)
	s := startConfigured(t, fmt.Sprintf(configTemplate, endpoint, "10s", iss.pemFile, up.URL))
	s.waitReady(t)

	admin := iss.token(t, "ada", "admins", "approvers")
	bob := iss.token(t, "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", moveTask, "--reason", "maintenance", "-q"))
	s.ok(admin, "request", "approve", id)
	move := "http://" + s.proxyAddr + "/exchange/mailboxes/alice/move-requests"
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusCreated }, 5*time.Second, 20*time.Millisecond)

	stopEtcd()
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusServiceUnavailable }, 15*time.Second, 100*time.Millisecond)
	before := received.Load()
	for i := 0; i < 5; i++ {
		rep := do(t, "POST", move, bob, "")
		require.Equal(t, http.StatusServiceUnavailable, rep.status)
		require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
	}
	require.Equal(t, before, received.Load(), "nothing gated was forwarded")
	resp, err := http.Get("http://" + s.controlAddr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}
