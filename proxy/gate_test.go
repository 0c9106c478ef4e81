package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
)

// gateEnv is a Gate on real parts: a dev issuer, a grant store on an
// embedded etcd, the default Rego bundle and an audit log, to which the
// store's expiries and used-up grants are written as serve writes them.
type gateEnv struct {
	t       *testing.T
	gate    *proxy.Gate
	store   *grants.Store
	dev     *identity.DevIssuer
	logPath string
}

// newGateEnv builds the gate; view, when not nil, wraps the store's view
// of grants.
func newGateEnv(t *testing.T, view func(*grants.Store) proxy.GrantView) *gateEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e, endpoint, err := etcdtest.Start(filepath.Join(dir, "etcd"), "gate-test")
	require.NoError(t, err)
	t.Cleanup(e.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })

	dev, err := identity.LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)
	verifier, err := identity.New(ctx, identity.Config{Issuers: []identity.Issuer{dev.Issuer()}})
	require.NoError(t, err)
	engine, err := policy.New(ctx, policy.Config{Bundle: rego.Bundle})
	require.NoError(t, err)
	logPath := filepath.Join(dir, "audit.log")
	log, err := audit.Open(audit.Config{Path: logPath})
	require.NoError(t, err)

	store, err := grants.New(grants.Config{Client: cli, Prefix: "/gate/",
		OnState: func(c grants.Control, ps []grants.Policy) {
			st := policy.State{Control: policy.Control{Enabled: c.Enabled, DefaultApprovers: c.DefaultApprovers}}
			for _, p := range ps {
				st.Policies = append(st.Policies, policy.ApprovalPolicy{ID: p.ID, Scope: string(p.Scope), Target: p.Target, Approval: p.Approval, Approvers: p.Approvers})
			}
			if err := engine.SetState(ctx, st); err != nil {
				t.Error(err)
			}
		},
		OnEvent: func(ev grants.Event) {
			if ev.Kind == grants.EventExpired || ev.Kind == grants.EventUsedUp {
				_, err := log.Write(ctx, audit.Record{Kind: "lifecycle", Event: ev.Kind, Time: ev.At, RequestID: ev.Request.ID, Comment: ev.Comment})
				require.NoError(t, err)
			}
		}})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, store.WaitReady(wctx))

	var gv proxy.GrantView = store
	if view != nil {
		gv = view(store)
	}
	gate, err := proxy.NewGate(proxy.GateConfig{Verifier: verifier, Grants: gv, Policy: engine, Audit: log, Uses: store,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() {
		gate.Drain()
		_ = log.Close()
	})
	enabled, approvers := true, "approvers"
	_, _, err = store.UpdateControl(ctx, grants.ControlPatch{Enabled: &enabled, DefaultApprovers: &approvers})
	require.NoError(t, err)
	return &gateEnv{t: t, gate: gate, store: store, dev: dev, logPath: logPath}
}

func (e *gateEnv) token(sub string) string {
	e.t.Helper()
	tok, err := e.dev.Sign(identity.DevToken{Subject: sub})
	require.NoError(e.t, err)
	return tok
}

// search is a call to Exchange\Search-Mailbox, a task of the role
// Exchange\Mailbox Import Export.
func search(token string, dry bool) proxy.Call {
	return proxy.Call{Method: http.MethodPost, Upstream: "exchange", Host: "exchange.elevate.test",
		Path: []string{"mailboxes", "mbx-1", "search"}, Query: url.Values{}, Token: token, DryRun: dry}
}

// grant approves, under an auto policy for scope and target allowing
// maxUses calls, a request of sub's, and waits until the gate would let
// sub's search through on that grant.
func (e *gateEnv) grant(sub string, scope grants.Scope, target string, maxUses int) grants.Request {
	e.t.Helper()
	ctx := context.Background()
	pol, err := e.store.CreatePolicy(ctx, grants.Policy{Scope: scope, Target: target, Approval: grants.ApprovalAuto, MaxUses: maxUses, CreatedBy: "ada"})
	require.NoError(e.t, err)
	req, err := e.store.Submit(ctx, grants.NewRequest{Requester: grants.Actor{Subject: sub}, Scope: scope, Target: target,
		Reason: "legal hold", PolicyID: pol.ID})
	require.NoError(e.t, err)
	tok := e.token(sub)
	require.Eventually(e.t, func() bool {
		v := e.gate.Check(ctx, search(tok, true))
		return v.Allowed && v.Grant != nil && v.Grant.RequestID == req.ID
	}, 10*time.Second, 5*time.Millisecond)
	return req
}

// events lists the events of the audit records about request id, in the
// log's order.
func (e *gateEnv) events(id string) []string {
	e.t.Helper()
	f, err := os.Open(e.logPath)
	require.NoError(e.t, err)
	defer f.Close()
	var out []string
	dec := json.NewDecoder(f)
	for {
		var r audit.Record
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return out
		} else {
			require.NoError(e.t, err)
		}
		if r.RequestID == id {
			out = append(out, r.Event)
		}
	}
}

// TestGateUsedUpGrant: the call after a grant's last use is refused with
// grant-used-up, naming the task, the used-up request and the command that
// asks again, also when the grant covers the task through a role and when
// judged without a use (POST /v1/check); and the audit log records the last
// allowed call before the request.used_up change.
func TestGateUsedUpGrant(t *testing.T) {
	const task, role = `Exchange\Search-Mailbox`, `Exchange\Mailbox Import Export`
	e := newGateEnv(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		desc, sub     string
		scope         grants.Scope
		target, flags string
	}{
		{desc: "a task grant", sub: "alice", scope: grants.ScopeTask, target: task, flags: "--task '" + task + "'"},
		{desc: "a role grant", sub: "bob", scope: grants.ScopeRole, target: role, flags: "--role '" + role + "'"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.scope == grants.ScopeRole {
				// The task's own policy would name the task: leave only the role's.
				for _, p := range e.store.Policies() {
					_, err := e.store.DeletePolicy(ctx, p.ID)
					require.NoError(t, err)
				}
			}
			req := e.grant(tc.sub, tc.scope, tc.target, 2)
			tok := e.token(tc.sub)
			for i := range 2 {
				v := e.gate.Check(ctx, search(tok, false))
				require.True(t, v.Allowed, "use %d: %+v", i+1, v.Problem)
			}
			for _, dry := range []bool{false, true} {
				v := e.gate.Check(ctx, search(tok, dry))
				require.False(t, v.Allowed)
				require.Equal(t, "grant_required", v.Event)
				p := v.Problem
				require.Equal(t, "urn:elevate:problem:grant-used-up", p.Type, p.Detail)
				require.Equal(t, http.StatusForbidden, p.Status)
				require.Equal(t, task, p.Task)
				require.Equal(t, "elevate request new "+tc.flags+" --reason '<why>'", p.Request)
				require.Contains(t, p.Detail, req.ID)
				require.Contains(t, p.Detail, p.Request)
			}
			require.Equal(t, []string{"allowed", "allowed", "request.used_up", "grant_required"}, e.events(req.ID),
				"the last allowed call comes before the request.used_up change; the refusal names the used-up request")
			got, err := e.store.Request(ctx, req.ID)
			require.NoError(t, err)
			require.Equal(t, grants.StatusUsedUp, got.Status)
			require.Equal(t, 2, got.Uses)
		})
	}
}

// staleView shows the grants of the moment it was frozen, as a replica's
// view that has not yet seen another replica's uses.
type staleView struct {
	*grants.Store
	frozen map[string][]grants.Grant
}

func (v *staleView) LiveGrants(subject string, now time.Time) []grants.Grant {
	if gs, ok := v.frozen[subject]; ok {
		return gs
	}
	return v.Store.LiveGrants(subject, now)
}

// TestGateUsedUpElsewhere: a call allowed by a view that has not yet seen
// the last use spent through another replica is refused with grant-used-up
// by the count in etcd, and one whose grant was revoked meanwhile with
// grant-required.
func TestGateUsedUpElsewhere(t *testing.T) {
	sv := &staleView{frozen: map[string][]grants.Grant{}}
	e := newGateEnv(t, func(s *grants.Store) proxy.GrantView { sv.Store = s; return sv })
	ctx := context.Background()
	req := e.grant("alice", grants.ScopeTask, `Exchange\Search-Mailbox`, 1)
	sv.frozen["alice"] = e.store.LiveGrants("alice", time.Now())
	require.Len(t, sv.frozen["alice"], 1)
	grantID := sv.frozen["alice"][0].ID
	require.NoError(t, e.store.UseGrant(ctx, grantID, nil), "the last use, through another replica")

	v := e.gate.Check(ctx, search(e.token("alice"), false))
	require.False(t, v.Allowed)
	require.Equal(t, "urn:elevate:problem:grant-used-up", v.Problem.Type, v.Problem.Detail)
	require.Equal(t, `Exchange\Search-Mailbox`, v.Problem.Task)
	require.Contains(t, v.Problem.Detail, req.ID)
	require.Equal(t, "grant_required", v.Event)

	req2 := e.grant("carl", grants.ScopeRole, `Exchange\Mailbox Import Export`, 3)
	sv.frozen["carl"] = e.store.LiveGrants("carl", time.Now())
	_, err := e.store.Revoke(ctx, req2.ID, grants.Actor{Subject: "carl"}, "done")
	require.NoError(t, err)
	v = e.gate.Check(ctx, search(e.token("carl"), false))
	require.False(t, v.Allowed)
	require.Equal(t, "urn:elevate:problem:grant-required", v.Problem.Type, v.Problem.Detail)
	require.Contains(t, v.Problem.Request, "elevate request new ")
}
