package grants

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventLog records the events a Store reports.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// all returns the events recorded so far.
func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// of returns the events of one kind recorded so far.
func (l *eventLog) of(kind string) []Event {
	var out []Event
	for _, e := range l.all() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// since returns the events recorded after the first n.
func (l *eventLog) since(n int) []Event {
	return l.all()[n:]
}

// withEvents makes a Store report its events to l.
func withEvents(l *eventLog) func(*Config) {
	return func(c *Config) { c.OnEvent = l.record }
}

// start runs s.Run until the returned stop is called or the test ends, and
// waits for the first sync.
func start(t testing.TB, s *Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done)
	})
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(ctx, waitFor)
	defer wcancel()
	require.NoError(t, s.WaitReady(wctx))
	return stop
}

// stored reads request id as it is in etcd, without settling its status,
// with its mod revision (0 when absent).
func (f *fixture) stored(id string) (Request, int64) {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx(), f.s.requestKey(id))
	require.NoError(f.t, err)
	if len(resp.Kvs) == 0 {
		return Request{}, 0
	}
	var r Request
	require.NoError(f.t, json.Unmarshal(resp.Kvs[0].Value, &r))
	return r, resp.Kvs[0].ModRevision
}

// expiryEntries returns the keys of the expiry index that name request id.
func (f *fixture) expiryEntries(id string) []string {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx(), f.s.kExpiries, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(f.t, err)
	var out []string
	for _, kv := range resp.Kvs {
		if strings.HasSuffix(string(kv.Key), "/"+id) {
			out = append(out, string(kv.Key))
		}
	}
	return out
}

// count returns the number of keys under prefix.
func (f *fixture) count(prefix string) int64 {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(f.t, err)
	return resp.Count
}

func TestEvents(t *testing.T) {
	type want struct {
		kind, by, comment string
		status            Status
		at                time.Duration // from clockStart
	}
	submitted := want{kind: EventSubmitted, by: "alice", status: StatusPending}
	tests := []struct {
		desc string
		// act makes the changes and returns the request as the last change
		// left it.
		act  func(t *testing.T, f *fixture) Request
		want []want
	}{
		{
			desc: "a manual submission is submitted",
			act:  func(t *testing.T, f *fixture) Request { return f.pendingRequest(1) },
			want: []want{submitted},
		},
		{
			desc: "an automatic approval is submitted, then approved by auto",
			act: func(t *testing.T, f *fixture) Request {
				return f.submit(request(f.policy(Policy{Approval: ApprovalAuto}).ID))
			},
			want: []want{
				{kind: EventSubmitted, by: "alice", status: StatusApproved},
				{kind: EventApproved, by: AutoApprover, status: StatusApproved},
			},
		},
		{
			desc: "only the last required approval is reported",
			act: func(t *testing.T, f *fixture) Request {
				r := f.pendingRequest(2)
				f.clock.Add(time.Minute)
				_, err := f.s.Approve(f.ctx(), r.ID, bob, "first")
				require.NoError(t, err)
				f.clock.Add(time.Minute)
				r, err = f.s.Approve(f.ctx(), r.ID, carol, "second")
				require.NoError(t, err)
				return r
			},
			want: []want{submitted, {kind: EventApproved, by: "carol", comment: "second", status: StatusApproved, at: 2 * time.Minute}},
		},
		{
			desc: "a denial",
			act: func(t *testing.T, f *fixture) Request {
				r := f.pendingRequest(1)
				f.clock.Add(time.Minute)
				r, err := f.s.Deny(f.ctx(), r.ID, bob, "not during the freeze")
				require.NoError(t, err)
				return r
			},
			want: []want{submitted, {kind: EventDenied, by: "bob", comment: "not during the freeze", status: StatusDenied, at: time.Minute}},
		},
		{
			desc: "a revocation",
			act: func(t *testing.T, f *fixture) Request {
				r := f.approvedRequest()
				f.clock.Add(10 * time.Minute)
				r, err := f.s.Revoke(f.ctx(), r.ID, alice, "done early")
				require.NoError(t, err)
				return r
			},
			want: []want{
				submitted,
				{kind: EventApproved, by: "bob", comment: "ok", status: StatusApproved},
				{kind: EventRevoked, by: "alice", comment: "done early", status: StatusRevoked, at: 10 * time.Minute},
			},
		},
		{
			desc: "a break-glass request",
			act: func(t *testing.T, f *fixture) Request {
				r, err := f.s.BreakGlass(f.ctx(), NewRequest{Requester: alice, Scope: ScopeTask, Target: task, Reason: "outage"})
				require.NoError(t, err)
				return r
			},
			want: []want{{kind: EventBreakGlass, by: "alice", status: StatusApproved}},
		},
		{
			desc: "a pending request swept after its expiry",
			act: func(t *testing.T, f *fixture) Request {
				r := f.pendingRequest(1)
				f.clock.Add(24 * time.Hour)
				n, err := f.s.Sweep(f.ctx())
				require.NoError(t, err)
				require.Equal(t, 1, n)
				r, _ = f.stored(r.ID)
				return r
			},
			want: []want{submitted, {kind: EventExpired, comment: "pending request expired undecided", status: StatusExpired, at: 24 * time.Hour}},
		},
		{
			desc: "a grant swept after its end",
			act: func(t *testing.T, f *fixture) Request {
				r := f.approvedRequest()
				f.clock.Add(time.Hour)
				n, err := f.s.Sweep(f.ctx())
				require.NoError(t, err)
				require.Equal(t, 1, n)
				r, _ = f.stored(r.ID)
				return r
			},
			want: []want{
				submitted,
				{kind: EventApproved, by: "bob", comment: "ok", status: StatusApproved},
				{kind: EventExpired, comment: "grant ended", status: StatusExpired, at: time.Hour},
			},
		},
		{
			desc: "the last use of a grant",
			act: func(t *testing.T, f *fixture) Request {
				r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 2}).ID))
				require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r.ID), nil))
				f.clock.Add(time.Minute)
				require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r.ID), nil))
				r, _ = f.stored(r.ID)
				return r
			},
			want: []want{
				{kind: EventSubmitted, by: "alice", status: StatusApproved},
				{kind: EventApproved, by: AutoApprover, status: StatusApproved},
				{kind: EventUsedUp, comment: "all 2 uses spent", status: StatusUsedUp, at: time.Minute},
			},
		},
		{
			desc: "refusals report nothing",
			act: func(t *testing.T, f *fixture) Request {
				r := f.pendingRequest(1)
				_, err := f.s.Submit(f.ctx(), request(r.PolicyID))
				require.ErrorIs(t, err, ErrConflict)
				_, err = f.s.Approve(f.ctx(), r.ID, Actor{Subject: "alice", Groups: []string{"approvers"}, MFA: true}, "")
				require.ErrorIs(t, err, ErrSelfApproval)
				_, err = f.s.Deny(f.ctx(), r.ID, dave, "")
				require.ErrorIs(t, err, ErrNotApprover)
				_, err = f.s.Revoke(f.ctx(), r.ID, bob, "")
				require.ErrorIs(t, err, ErrNotApproved)
				_, err = f.s.BreakGlass(f.ctx(), NewRequest{Requester: alice, Scope: ScopeTask, Target: task})
				require.ErrorIs(t, err, ErrInvalid)
				n, err := f.s.Sweep(f.ctx())
				require.NoError(t, err)
				require.Zero(t, n)
				return r
			},
			want: []want{submitted},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			last := tc.act(t, f)
			events := log.all()
			require.Len(t, events, len(tc.want))
			for i, w := range tc.want {
				e := events[i]
				require.Equal(t, w.kind, e.Kind, "event %d", i)
				require.Equal(t, w.by, e.By, "event %d", i)
				require.Equal(t, w.comment, e.Comment, "event %d", i)
				require.Equal(t, w.status, e.Request.Status, "event %d", i)
				require.Equal(t, clockStart.Add(w.at), e.At, "event %d", i)
				require.Equal(t, last.ID, e.Request.ID, "event %d", i)
			}
			require.Equal(t, last, events[len(events)-1].Request, "the last event carries the request as the change left it")
		})
	}
}

func TestEventsComeFromTheCommittingStore(t *testing.T) {
	var mine, theirs eventLog
	f := newFixture(t, withEvents(&mine))
	other, err := New(Config{Client: f.cli, Prefix: f.s.cfg.Prefix, Now: f.clock.Now, OnEvent: theirs.record})
	require.NoError(t, err)
	f.run()
	start(t, other)

	r := f.approvedRequest()
	// The other Store sees the change through its view, and reports nothing.
	require.Eventually(t, func() bool { return len(other.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
	require.Len(t, mine.all(), 2)
	require.Empty(t, theirs.all())

	// The other Store makes the next change and reports it itself.
	_, err = other.Revoke(f.ctx(), r.ID, alice, "")
	require.NoError(t, err)
	require.Len(t, mine.all(), 2)
	require.Len(t, theirs.of(EventRevoked), 1)
}

func TestEventRequestIsACopy(t *testing.T) {
	var log eventLog
	f := newFixture(t, withEvents(&log))
	r := f.pendingRequest(2)
	r, err := f.s.Approve(f.ctx(), r.ID, bob, "")
	require.NoError(t, err)
	r, err = f.s.Approve(f.ctx(), r.ID, carol, "")
	require.NoError(t, err)
	e := log.of(EventApproved)
	require.Len(t, e, 1)
	e[0].Request.Approvals[0].By = "mallory"
	require.Equal(t, "bob", r.Approvals[0].By, "the caller's request does not share its approvals with the event")
}
