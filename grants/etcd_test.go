package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/elevate-pam/elevate/internal/clocktest"
	"github.com/elevate-pam/elevate/internal/etcdtest"
)

// etcd is the one etcd member the package's tests share; each test works
// under a key prefix of its own.
var etcd etcdtest.Shared

// testEndpoint is the shared member's client URL.
var testEndpoint string

func TestMain(m *testing.M) {
	endpoint, err := etcd.Endpoint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start etcd:", err)
		os.Exit(1)
	}
	testEndpoint = endpoint
	os.Exit(etcd.Run(m))
}

// SharedEtcdEndpoint gives the package's examples the test etcd member.
func SharedEtcdEndpoint() string { return testEndpoint }

// newClient is a client of the etcd at endpoint, closed when t ends.
func newClient(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, endpoint)
}

var clockStart = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)

// fixture is a Store under a key prefix of its own, on the shared etcd,
// with a fake clock.
type fixture struct {
	t     testing.TB
	cli   *clientv3.Client
	clock *clocktest.Clock
	s     *Store
}

func newFixture(t testing.TB, mods ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, cli: newClient(t, testEndpoint), clock: clocktest.New(clockStart)}
	cfg := Config{
		Client: f.cli,
		Prefix: etcd.Prefix(t),
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

// cutter is a relay in front of etcd that a test can cut, closing every
// connection and refusing new ones, and restore.
type cutter struct{ *etcdtest.Relay }

func newCutter(t testing.TB, target string) *cutter {
	t.Helper()
	r, err := etcdtest.NewRelay(target)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return &cutter{r}
}

func (c *cutter) endpoint() string { return "http://" + c.Addr() }

func (c *cutter) Cut() { c.SetCut(true) }

func (c *cutter) Restore() { c.SetCut(false) }
