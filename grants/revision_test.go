package grants

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// onState keeps the last state OnState was told of.
type onState struct {
	mu   sync.Mutex
	ctl  Control
	pols []Policy
}

func (o *onState) set(c Control, ps []Policy) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ctl, o.pols = c, ps
}

func (o *onState) get() (Control, []Policy) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ctl, o.pols
}

func hasPolicy(ps []Policy, id string) bool {
	return slices.ContainsFunc(ps, func(p Policy) bool { return p.ID == id })
}

// TestWaitRevision: once WaitRevision has returned for the revision a
// mutation answered with, the view and OnState's receiver have the change,
// read at once, without polling.
func TestWaitRevision(t *testing.T) {
	var st onState
	f := newFixture(t, func(c *Config) { c.OnState = st.set })
	f.run()
	ctx := f.ctx()
	now := f.clock.Now()
	wait := func(rev int64) {
		t.Helper()
		require.Positive(t, rev)
		require.NoError(t, f.s.WaitRevision(ctx, rev))
	}

	_, ctl, err := f.s.UpdateControl(ctx, ControlPatch{Enabled: new(true), DefaultApprovers: new("approvers")})
	require.NoError(t, err)
	wait(ctl.Revision)
	require.Equal(t, ctl, f.s.Control())
	told, _ := st.get()
	require.Equal(t, ctl, told, "OnState has been told")

	manual, err := f.s.CreatePolicy(ctx, Policy{Scope: ScopeTask, Target: task, Approval: ApprovalManual, CreatedBy: "admin"})
	require.NoError(t, err)
	wait(manual.Revision)
	require.True(t, hasPolicy(f.s.Policies(), manual.ID))
	_, pols := st.get()
	require.True(t, hasPolicy(pols, manual.ID), "OnState has been told")

	// Approvals one after the other, each read back at once.
	for i := range 10 {
		r := f.submit(request(manual.ID))
		r, err := f.s.Approve(ctx, r.ID, bob, "ok")
		require.NoError(t, err)
		wait(r.Revision)
		require.Len(t, f.s.LiveGrants("alice", now), 1, "approval %d", i)
		r, err = f.s.Revoke(ctx, r.ID, alice, "done")
		require.NoError(t, err)
		wait(r.Revision)
		require.Empty(t, f.s.LiveGrants("alice", now), "revocation %d", i)
	}

	bg, err := f.s.BreakGlass(ctx, NewRequest{Requester: dave, Scope: ScopeTask, Target: task, Reason: "outage"})
	require.NoError(t, err)
	wait(bg.Revision)
	require.Len(t, f.s.LiveGrants("dave", now), 1)

	autoPol, err := f.s.CreatePolicy(ctx, Policy{Scope: ScopeRole, Target: "Mailbox Import Export", Approval: ApprovalAuto, CreatedBy: "admin"})
	require.NoError(t, err)
	r, err := f.s.Submit(ctx, NewRequest{Requester: carol, Scope: ScopeRole, Target: autoPol.Target, Reason: "export", PolicyID: autoPol.ID})
	require.NoError(t, err)
	wait(r.Revision)
	require.Len(t, f.s.LiveGrants("carol", now), 1)

	gone, err := f.s.DeletePolicy(ctx, manual.ID)
	require.NoError(t, err)
	wait(gone.Revision)
	require.False(t, hasPolicy(f.s.Policies(), manual.ID))
	_, pols = st.get()
	require.False(t, hasPolicy(pols, manual.ID), "OnState has been told")
}

// TestWaitRevisionWakes: a waiter for a revision not yet committed wakes
// when it is, here on another replica's view of the change.
func TestWaitRevisionWakes(t *testing.T) {
	a := newFixture(t)
	b := newFixture(t, func(c *Config) { c.Prefix = a.s.cfg.Prefix; c.Now = a.clock.Now })
	a.run()
	b.run()
	ctx := a.ctx()
	p := a.policy(Policy{Approval: ApprovalAuto})
	resp, err := a.cli.Get(ctx, a.s.kControl)
	require.NoError(t, err)
	next := resp.Header.Revision + 1

	woke := make(chan error, 1)
	go func() { woke <- b.s.WaitRevision(ctx, next) }()
	r := a.submit(request(p.ID))
	require.GreaterOrEqual(t, r.Revision, next)
	require.NoError(t, <-woke)
	require.NoError(t, b.s.WaitRevision(ctx, r.Revision))
	require.Len(t, b.s.LiveGrants("alice", a.clock.Now()), 1, "the other replica's view has the grant")
}

// TestWaitRevisionProgress: a revision made outside the prefix is reached
// through the watch's progress reports.
func TestWaitRevisionProgress(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.StaleAfter = 300 * time.Millisecond })
	f.run()
	resp, err := f.cli.Put(f.ctx(), "/elsewhere"+f.s.cfg.Prefix, "x")
	require.NoError(t, err)
	require.NoError(t, f.s.WaitRevision(f.ctx(), resp.Header.Revision))
}

// TestWaitRevisionContext: WaitRevision gives up when its context ends, on
// a view that never gets there and on one that is not running.
func TestWaitRevisionContext(t *testing.T) {
	tests := []struct {
		desc string
		run  bool
	}{
		{desc: "a running view that has not reached the revision", run: true},
		{desc: "a view that is not running"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			if tc.run {
				f.run()
			}
			resp, err := f.cli.Get(f.ctx(), f.s.kControl)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(f.ctx(), 50*time.Millisecond)
			defer cancel()
			err = f.s.WaitRevision(ctx, resp.Header.Revision+1_000_000)
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorContains(t, err, "waiting for the view to reach revision")
		})
	}
}
