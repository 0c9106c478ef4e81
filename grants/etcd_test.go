package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// testEndpoint is the client URL of the etcd member the package's tests
// share; each test works under its own key prefix.
var testEndpoint string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "grants-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, endpoint, err := startEtcd(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start etcd:", err)
		return 1
	}
	defer e.Close()
	testEndpoint = endpoint
	return m.Run()
}

// SharedEtcdEndpoint gives the package's examples the test etcd member.
func SharedEtcdEndpoint() string { return testEndpoint }

// startEtcd starts a single-member etcd with its data in dir, listening on
// free loopback ports, and waits until it serves.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		e, endpoint, err := startEtcdOnce(dir)
		if err == nil {
			return e, endpoint, nil
		}
		lastErr = err
		_ = os.RemoveAll(dir)
	}
	return nil, "", lastErr
}

func startEtcdOnce(dir string) (*embed.Etcd, string, error) {
	client, err := freeURL()
	if err != nil {
		return nil, "", err
	}
	peer, err := freeURL()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "grants-test"
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, client.String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(20 * time.Second):
		e.Close()
		return nil, "", errors.New("etcd did not become ready within 20s")
	}
}

func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

func newClient(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var clockStart = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var prefixSeq atomic.Int64

// fixture is a Store under a key prefix of its own, on the shared etcd,
// with a fake clock.
type fixture struct {
	t     testing.TB
	cli   *clientv3.Client
	clock *fakeClock
	s     *Store
}

func newFixture(t testing.TB, mods ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, cli: newClient(t, testEndpoint), clock: &fakeClock{t: clockStart}}
	cfg := Config{
		Client: f.cli,
		Prefix: fmt.Sprintf("/test-%d/", prefixSeq.Add(1)),
		Now:    f.clock.Now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	f.s = s
	return f
}

// run starts s.Run until the test ends and waits for the first sync.
func run(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, s.WaitReady(wctx))
}

func (f *fixture) run() { run(f.t, f.s) }

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

const task = `Exchange\New-MoveRequest`

var (
	alice = Actor{Subject: "alice", Groups: []string{"staff"}}
	bob   = Actor{Subject: "bob", Groups: []string{"approvers"}, MFA: true}
	carol = Actor{Subject: "carol", Groups: []string{"approvers"}, MFA: true}
	dave  = Actor{Subject: "dave", Groups: []string{"staff"}, MFA: true}
)

// policy stores p, defaulting to a manual policy on task approved by group
// "approvers".
func (f *fixture) policy(p Policy) Policy {
	f.t.Helper()
	if p.Scope == "" {
		p.Scope = ScopeTask
	}
	if p.Target == "" {
		p.Target = task
	}
	if p.Approval == "" {
		p.Approval = ApprovalManual
	}
	p.CreatedBy = "admin"
	p, err := f.s.CreatePolicy(f.ctx(), p)
	require.NoError(f.t, err)
	return p
}

// request is alice's request for task under policy id.
func request(policyID string) NewRequest {
	return NewRequest{
		Requester: alice,
		Scope:     ScopeTask,
		Target:    task,
		Reason:    "move the CEO's mailbox",
		Duration:  time.Hour,
		PolicyID:  policyID,
	}
}

func (f *fixture) submit(n NewRequest) Request {
	f.t.Helper()
	r, err := f.s.Submit(f.ctx(), n)
	require.NoError(f.t, err)
	return r
}

// pendingRequest stores a manual policy (approvals required) and alice's
// pending request under it.
func (f *fixture) pendingRequest(approvals int) Request {
	f.t.Helper()
	p := f.policy(Policy{Approvers: "approvers", Approvals: approvals})
	return f.submit(request(p.ID))
}

// approvedRequest is alice's request approved by bob.
func (f *fixture) approvedRequest() Request {
	f.t.Helper()
	r := f.pendingRequest(1)
	r, err := f.s.Approve(f.ctx(), r.ID, bob, "ok")
	require.NoError(f.t, err)
	require.Equal(f.t, StatusApproved, r.Status)
	return r
}

// grantKV reads the grant key of request id from etcd.
func (f *fixture) grantKV(id string) (g Grant, lease clientv3.LeaseID, found bool) {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx(), f.s.grantKey(id))
	require.NoError(f.t, err)
	if len(resp.Kvs) == 0 {
		return Grant{}, clientv3.NoLease, false
	}
	require.NoError(f.t, json.Unmarshal(resp.Kvs[0].Value, &g))
	return g, clientv3.LeaseID(resp.Kvs[0].Lease), true
}

// cutter is a TCP relay in front of etcd that a test can cut, closing every
// connection and refusing new ones, and restore.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func newCutter(t testing.TB, target string) *cutter {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	go c.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		c.Cut()
	})
	return c
}

func (c *cutter) endpoint() string { return "http://" + c.ln.Addr().String() }

func (c *cutter) serve() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.relay(in)
	}
}

func (c *cutter) relay(in net.Conn) {
	out, err := net.Dial("tcp", c.target)
	if err != nil {
		_ = in.Close()
		return
	}
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		_ = in.Close()
		_ = out.Close()
		return
	}
	c.conns[in], c.conns[out] = struct{}{}, struct{}{}
	c.mu.Unlock()
	go func() {
		_, _ = io.Copy(out, in)
		_ = out.Close()
	}()
	_, _ = io.Copy(in, out)
	_ = in.Close()
}

func (c *cutter) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for conn := range c.conns {
		_ = conn.Close()
	}
	clear(c.conns)
}

func (c *cutter) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = false
}
