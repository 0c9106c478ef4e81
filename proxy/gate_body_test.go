package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// fakeDigester digests a body as "digest:" and the body.
type fakeDigester struct{}

func (fakeDigester) BodyHMAC(b []byte) string { return "digest:" + string(b) }

// rpcPolicy judges JSON-RPC calls by method, as a route table with rpc
// conditions would: reads are allowed, aria2.shutdown needs a grant
// (allowed by grt-rpc, limited or not, when the caller holds it),
// aria2.forceShutdown is denied, and aria2.fail cannot be evaluated.
func rpcPolicy(in policy.Input) (policy.Decision, error) {
	call, _ := in.Body.(map[string]any)
	method, _ := call["method"].(string)
	switch method {
	case "aria2.shutdown":
		for _, g := range in.Grants {
			if g.ID == "grt-rpc" {
				return policy.Decision{Outcome: policy.Allow, Task: `Aria2\Shutdown`, Gated: true, GrantID: g.ID, Reason: "granted"}, nil
			}
		}
		return policy.Decision{Outcome: policy.GrantRequired, Task: `Aria2\Shutdown`, Gated: true, Reason: "needs a grant",
			Request: &policy.Target{Scope: policy.ScopeTask, Target: `Aria2\Shutdown`}}, nil
	case "aria2.forceShutdown":
		return policy.Decision{Outcome: policy.Deny, Task: `Aria2\Force-Shutdown`, Reason: "never through elevate"}, nil
	case "aria2.fail":
		return policy.Decision{}, errors.New("rego: failed")
	case "":
		return policy.Decision{Outcome: policy.Deny, Reason: "uncatalogued"}, nil
	}
	return policy.Decision{Outcome: policy.Allow, Task: `Aria2\Get-Status`, Reason: "a read"}, nil
}

// TestGateJudgedBody: each operation of a judged body is judged on its
// own with its body as input.body; the call is allowed only if every one
// is, and its record says what each was.
func TestGateJudgedBody(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	grant := grants.Grant{ID: "grt-rpc", RequestID: "req-rpc", Subject: "alice", Scope: grants.ScopeTask, Target: `Aria2\Shutdown`,
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), Approvers: []string{"carol"}}
	limited := grant
	limited.MaxUses = 5
	op := func(method string) proxy.Operation {
		return proxy.Operation{Name: method, Body: map[string]any{"method": method}}
	}
	for _, tc := range []struct {
		desc  string
		ops   []proxy.Operation
		live  []grants.Grant
		uses  bool
		useUp error

		allowed bool
		event   string
		task    string   // the verdict's and the record's task
		slug    string   // the refusal's
		detail  string   // the refusal's detail, when it matters
		records []string // operation name:outcome in the record
		used    []string // grants whose use was asked for
		grant   string   // the record's grant
	}{
		{desc: "one call allowed", ops: []proxy.Operation{op("aria2.tellActive")},
			allowed: true, event: "allowed", task: `Aria2\Get-Status`, records: []string{"aria2.tellActive:allow"}},
		{desc: "a batch of reads names their one task", ops: []proxy.Operation{op("aria2.tellActive"), op("aria2.getGlobalStat")},
			allowed: true, event: "allowed", task: `Aria2\Get-Status`, records: []string{"aria2.tellActive:allow", "aria2.getGlobalStat:allow"}},
		{desc: "a batch of several tasks, all allowed, names none", ops: []proxy.Operation{op("aria2.tellActive"), op("aria2.shutdown")}, live: []grants.Grant{grant},
			allowed: true, event: "allowed", records: []string{"aria2.tellActive:allow", "aria2.shutdown:allow"}, grant: "grt-rpc"},
		{desc: "a read and a gated call without a grant", ops: []proxy.Operation{op("aria2.tellActive"), op("aria2.shutdown")},
			event: "grant_required", task: `Aria2\Shutdown`, slug: "grant-required",
			detail:  `call 2 of 2 (aria2.shutdown): Aria2\Shutdown needs an approved grant. Request one with: elevate request new --task 'Aria2\Shutdown' --reason '<why>'`,
			records: []string{"aria2.tellActive:allow", "aria2.shutdown:grant_required"}},
		{desc: "one gated call names its method", ops: []proxy.Operation{op("aria2.shutdown")},
			event: "grant_required", task: `Aria2\Shutdown`, slug: "grant-required",
			detail:  `aria2.shutdown: Aria2\Shutdown needs an approved grant. Request one with: elevate request new --task 'Aria2\Shutdown' --reason '<why>'`,
			records: []string{"aria2.shutdown:grant_required"}},
		{desc: "a denial decides before a missing grant", ops: []proxy.Operation{op("aria2.shutdown"), op("aria2.forceShutdown"), op("aria2.tellActive")},
			event: "denied", task: `Aria2\Force-Shutdown`, slug: "denied",
			records: []string{"aria2.shutdown:grant_required", "aria2.forceShutdown:deny", "aria2.tellActive:allow"}},
		{desc: "a policy error on any call refuses the whole", ops: []proxy.Operation{op("aria2.tellActive"), op("aria2.fail")},
			event: "error", slug: "policy-error"},
		{desc: "each call under a limited grant spends a use", ops: []proxy.Operation{op("aria2.shutdown"), op("aria2.tellActive"), op("aria2.shutdown")},
			live: []grants.Grant{limited}, uses: true,
			allowed: true, event: "allowed", records: []string{"aria2.shutdown:allow", "aria2.tellActive:allow", "aria2.shutdown:allow"},
			used: []string{"grt-rpc", "grt-rpc"}, grant: "grt-rpc"},
		{desc: "a use that cannot be spent refuses the batch", ops: []proxy.Operation{op("aria2.shutdown"), op("aria2.shutdown")},
			live: []grants.Grant{limited}, uses: true, useUp: grants.ErrUsedUp,
			event: "grant_required", task: `Aria2\Shutdown`, slug: "grant-used-up", used: []string{"grt-rpc"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			decider := &fakeDecider{decide: rpcPolicy}
			auditor := &fakeAuditor{}
			var trail []string
			uses := &fakeUses{use: grants.Use{N: 1, MaxUses: 5}, err: tc.useUp, trail: &trail}
			cfg := proxy.GateConfig{Verifier: &fakeVerifier{id: identity.Identity{Subject: "alice"}},
				Grants: &fakeView{live: map[string][]grants.Grant{"alice": tc.live}}, Policy: decider, Audit: auditor,
				Digest: fakeDigester{}, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
			if tc.uses {
				cfg.Uses = uses
			}
			gate, err := proxy.NewGate(cfg)
			require.NoError(t, err)
			body := []byte(`[...]`)
			v := gate.Check(context.Background(), proxy.Call{Method: "POST", Upstream: "aria2", Host: "elevate.test", Path: []string{"jsonrpc"},
				RawQuery: "tid=1", Token: "t", Body: body, Operations: tc.ops})

			require.Equal(t, tc.allowed, v.Allowed)
			require.Equal(t, tc.event, v.Event)
			if !tc.allowed {
				require.Equal(t, "urn:elevate:problem:"+tc.slug, v.Problem.Type, v.Problem.Detail)
				if tc.detail != "" {
					require.Equal(t, tc.detail, v.Problem.Detail)
				}
			}
			if tc.event != "error" {
				require.Equal(t, tc.task, v.Decision.Task)
				require.Len(t, decider.inputs, len(tc.ops), "every operation judged")
				for i, in := range decider.inputs {
					require.Equal(t, tc.ops[i].Body, in.Body, "operation %d judged with its own body", i)
				}
			}
			require.Equal(t, tc.used, uses.grants)

			recs := auditor.written()
			require.Len(t, recs, 1)
			r := recs[0]
			require.Equal(t, tc.event, r.Event)
			require.Equal(t, "tid=1", r.Query)
			require.Equal(t, "digest:[...]", r.BodyHMAC)
			require.Nil(t, r.Fields, "fields of operations are theirs")
			if tc.event == "error" {
				require.Empty(t, r.Operations)
				return
			}
			require.Equal(t, tc.task, r.Task)
			var got []string
			for _, o := range r.Operations {
				got = append(got, o.Name+":"+o.Outcome)
				if o.Outcome == "allow" && o.Name == "aria2.shutdown" {
					require.Equal(t, "grt-rpc", o.GrantID)
				}
			}
			if tc.records != nil {
				require.Equal(t, tc.records, got)
			}
			if tc.allowed {
				require.Equal(t, tc.grant, r.GrantID)
			}
		})
	}
}

// TestGateJudgedWholeBody: a JSON or form body is one operation without a
// name: judged once, its recorded fields at the record's top level; a
// call without a judged body is judged once without input.body, and its
// record has no digest even with a digester.
func TestGateJudgedWholeBody(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	decider := &fakeDecider{decide: allowRead}
	auditor := &fakeAuditor{}
	gate, err := proxy.NewGate(proxy.GateConfig{Verifier: &fakeVerifier{id: identity.Identity{Subject: "alice"}}, Grants: &fakeView{},
		Policy: decider, Audit: auditor, Digest: fakeDigester{}, Now: func() time.Time { return now }})
	require.NoError(t, err)
	body := map[string]any{"name": "example.org.", "kind": "Native"}
	call := proxy.Call{Method: "POST", Upstream: "dns", Host: "elevate.test", Path: []string{"zones"}, Token: "t",
		Body:       []byte(`{"name":"example.org.","kind":"Native"}`),
		Operations: []proxy.Operation{{Body: body, Fields: map[string]json.RawMessage{"name": json.RawMessage(`"example.org."`)}}}}
	v := gate.Check(context.Background(), call)
	require.True(t, v.Allowed)
	require.Len(t, decider.inputs, 1)
	require.Equal(t, body, decider.inputs[0].Body)
	r := auditor.written()[0]
	require.Empty(t, r.Operations)
	require.Equal(t, map[string]json.RawMessage{"name": json.RawMessage(`"example.org."`)}, r.Fields)
	require.Equal(t, `digest:{"name":"example.org.","kind":"Native"}`, r.BodyHMAC)

	plain := proxy.Call{Method: "GET", Upstream: "dns", Host: "elevate.test", Path: []string{"zones"}, RawQuery: "a=1", Token: "t"}
	v = gate.Check(context.Background(), plain)
	require.True(t, v.Allowed)
	require.Nil(t, decider.inputs[1].Body)
	r = auditor.written()[1]
	require.Empty(t, r.BodyHMAC)
	require.Equal(t, "a=1", r.Query)

	gate.Outcome(context.Background(), v, plain, proxy.Outcome{Status: http.StatusOK})
	gate.Drain()
	out := auditor.written()[2]
	require.Equal(t, audit.EventOutcome, out.Event)
	require.Equal(t, "a=1", out.Query, "the outcome record carries the query too")
}
