package proxy_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// The gate's parts as small fakes of the interfaces it declares.

// fakeVerifier answers every token with id, or with err.
type fakeVerifier struct {
	id    identity.Identity
	err   error
	calls int
}

func (f *fakeVerifier) Verify(_ context.Context, _ string) (identity.Identity, error) {
	f.calls++
	return f.id, f.err
}

// fakeView is a GrantView over fixed grants, by subject.
type fakeView struct {
	live, usedUp map[string][]grants.Grant
	stale        bool
}

func (v *fakeView) LiveGrants(sub string, _ time.Time) []grants.Grant {
	return slices.Clone(v.live[sub])
}

func (v *fakeView) UsedUpGrants(sub string, _ time.Time) []grants.Grant {
	return slices.Clone(v.usedUp[sub])
}

func (v *fakeView) Fresh() bool { return !v.stale }

// fakeDecider decides with decide and keeps what it was asked.
type fakeDecider struct {
	decide func(in policy.Input) (policy.Decision, error)
	inputs []policy.Input
	times  []time.Time
}

func (d *fakeDecider) Eval(_ context.Context, in policy.Input, now time.Time) (policy.Decision, error) {
	d.inputs, d.times = append(d.inputs, in), append(d.times, now)
	return d.decide(in)
}

// fakeAuditor keeps the records it is given, or refuses them with err.
// trail, when set, is told of every record written.
type fakeAuditor struct {
	mu      sync.Mutex
	records []audit.Record
	err     error
	trail   *[]string
}

func (a *fakeAuditor) Write(_ context.Context, r audit.Record) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return audit.Record{}, a.err
	}
	a.records = append(a.records, r)
	if a.trail != nil {
		*a.trail = append(*a.trail, "record "+r.Event)
	}
	return r, nil
}

func (a *fakeAuditor) written() []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.records)
}

// fakeUses spends a use (calling spent with use) or fails with err.
type fakeUses struct {
	use    grants.Use
	err    error
	grants []string // the grants whose use was asked for
	trail  *[]string
}

func (u *fakeUses) UseGrant(_ context.Context, id string, spent func(grants.Use)) error {
	u.grants = append(u.grants, id)
	if u.err != nil {
		return u.err
	}
	*u.trail = append(*u.trail, "use")
	spent(u.use)
	return nil
}

// Decisions of the fake policy.
const gateTask = `Exchange\Search-Mailbox`

func allowRead(policy.Input) (policy.Decision, error) {
	return policy.Decision{Outcome: policy.Allow, Task: `Exchange\Get-Mailbox`, Reason: "a read"}, nil
}

// coveringRole is the approval policy's target that covers gateTask.
var coveringRole = &policy.Target{Scope: policy.ScopeRole, Target: `Exchange\Mailbox Import Export`}

// allowBy allows the call as a gated task by the grant named id.
func allowBy(id string) func(policy.Input) (policy.Decision, error) {
	return func(policy.Input) (policy.Decision, error) {
		return policy.Decision{Outcome: policy.Allow, Task: gateTask, Gated: true, GrantID: id, Reason: "granted", Request: coveringRole}, nil
	}
}

// needGrant asks for a grant for the role that covers gateTask.
func needGrant(policy.Input) (policy.Decision, error) {
	return policy.Decision{Outcome: policy.GrantRequired, Task: gateTask, Gated: true, Reason: "needs a grant", Request: coveringRole}, nil
}

// allowByGrantIn allows the call by grant id when the input holds it and
// asks for a grant otherwise: a policy that knows one grant.
func allowByGrantIn(id string) func(policy.Input) (policy.Decision, error) {
	return func(in policy.Input) (policy.Decision, error) {
		for _, g := range in.Grants {
			if g.ID == id {
				return allowBy(id)(in)
			}
		}
		return needGrant(in)
	}
}

// TestGateCheck runs Gate.Check through each of its branches with fake
// parts: what it answers, which records it writes, what the policy sees.
func TestGateCheck(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	alice := identity.Identity{Subject: "alice", Groups: []string{"helpdesk"}, AMR: []string{"pwd", "mfa"}, Email: "alice@example.test"}
	live := grants.Grant{ID: "grt-live", RequestID: "req-live", Subject: "alice", Scope: grants.ScopeRole,
		Target: `Exchange\Mailbox Import Export`, NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), Approvers: []string{"carol"}}
	limited := live
	limited.ID, limited.RequestID, limited.MaxUses = "grt-limited", "req-limited", 2
	spent := live
	spent.ID, spent.RequestID, spent.MaxUses, spent.Uses = "grt-spent", "req-spent", 2, 2
	expired := expiredTokenError(t)
	const roleCommand = `elevate request new --role 'Exchange\Mailbox Import Export' --reason '<why>'`
	second := 0 // evaluations of failSecond so far
	failSecond := func(in policy.Input) (policy.Decision, error) {
		if second++; second > 1 {
			return policy.Decision{}, errors.New("rego: second evaluation failed")
		}
		return needGrant(in)
	}

	for _, tc := range []struct {
		desc string
		// The parts; the defaults are alice's token, verified, no grants,
		// a fresh view and an ungated read allowed.
		noToken           bool
		verifyErr         error
		live, usedUp      []grants.Grant
		stale             bool
		decide            func(policy.Input) (policy.Decision, error)
		auditErr          error
		uses              *fakeUses
		readsWhenStale    bool
		readsWithoutAudit bool
		dry               bool

		allowed bool
		event   string // the verdict's event
		status  int    // the refusal's status
		slug    string
		detail  string   // the refusal's detail, when it matters
		records []string // the events of the records written, in order
		reason  string   // the decision record's reason, when it matters
		grant   string   // the grant named by the verdict (and the record)
		request string   // the request named by the record
		spent   string   // the used-up grant named by the record, not the verdict
		evals   int      // policy evaluations
		trail   []string // uses spent and records written, in order
	}{
		// Identity.
		{desc: "no token", noToken: true,
			event: "unauthenticated", status: 401, slug: "unauthenticated", detail: "a valid bearer token is required",
			records: []string{"unauthenticated"}, reason: "a valid bearer token is required"},
		{desc: "token refused with a reason the caller may see", verifyErr: expired,
			event: "unauthenticated", status: 401, slug: "unauthenticated", detail: "token refused: token expired",
			records: []string{"unauthenticated"}, reason: "token refused: token expired"},
		{desc: "verifier failure not shown to the caller", verifyErr: errors.New("jwks: dial tcp 10.9.8.7:443: connection refused"),
			event: "unauthenticated", status: 401, slug: "unauthenticated", detail: "a valid bearer token is required",
			records: []string{"unauthenticated"}, reason: "a valid bearer token is required"},
		{desc: "no token, dry run", noToken: true, dry: true,
			event: "unauthenticated", status: 401, slug: "unauthenticated"},

		// Policy.
		{desc: "policy error", decide: func(policy.Input) (policy.Decision, error) {
			return policy.Decision{}, errors.New("rego: internal detail")
		},
			event: "error", status: 500, slug: "policy-error", detail: "the policy could not be evaluated; the call was refused",
			records: []string{"error"}, reason: "policy evaluation failed", evals: 1},
		{desc: "denied", decide: func(policy.Input) (policy.Decision, error) {
			return policy.Decision{Outcome: policy.Deny, Task: gateTask, Reason: "not on weekends"}, nil
		}, event: "denied", status: 403, slug: "denied", detail: "not on weekends", records: []string{"denied"}, reason: "not on weekends", evals: 1},
		{desc: "an outcome the gate does not know denies", decide: func(policy.Input) (policy.Decision, error) {
			return policy.Decision{Outcome: "maybe", Task: gateTask, Reason: "unsure"}, nil
		}, event: "denied", status: 403, slug: "denied", records: []string{"denied"}, evals: 1},
		{desc: "ungated read allowed", allowed: true, event: "allowed", records: []string{"allowed"}, reason: "a read", evals: 1},
		{desc: "allowed by a live grant", live: []grants.Grant{live}, decide: allowBy(live.ID),
			allowed: true, event: "allowed", records: []string{"allowed"}, grant: live.ID, request: live.RequestID, evals: 1},
		{desc: "the policy named a grant the view does not have", live: []grants.Grant{live}, decide: allowBy("grt-forged"),
			event: "error", status: 500, slug: "policy-error", records: []string{"error"}, reason: "policy named an unknown grant", evals: 1},
		{desc: "the policy named a grant without any grant in view", decide: allowBy("grt-forged"),
			event: "error", status: 500, slug: "policy-error", records: []string{"error"}, reason: "policy named an unknown grant", evals: 1},

		// A view not confirmed fresh with etcd.
		{desc: "stale view refuses a gated call", stale: true, live: []grants.Grant{live}, decide: allowBy(live.ID),
			event: "unavailable", status: 503, slug: "state-unavailable", records: []string{"unavailable"},
			reason: "grant state is not confirmed with etcd", grant: live.ID, request: live.RequestID, evals: 1},
		{desc: "stale view refuses a gated call also with reads_when_stale", stale: true, readsWhenStale: true, live: []grants.Grant{live}, decide: allowBy(live.ID),
			event: "unavailable", status: 503, slug: "state-unavailable", records: []string{"unavailable"}, grant: live.ID, evals: 1},
		{desc: "stale view refuses a call allowed by a grant of an ungated task", stale: true, readsWhenStale: true, live: []grants.Grant{live},
			decide: func(policy.Input) (policy.Decision, error) {
				return policy.Decision{Outcome: policy.Allow, Task: gateTask, GrantID: live.ID}, nil
			}, event: "unavailable", status: 503, slug: "state-unavailable", records: []string{"unavailable"}, grant: live.ID, evals: 1},
		{desc: "stale view refuses an ungated read", stale: true,
			event: "unavailable", status: 503, slug: "state-unavailable", records: []string{"unavailable"}, evals: 1},
		{desc: "stale view lets an ungated read through with reads_when_stale", stale: true, readsWhenStale: true,
			allowed: true, event: "allowed", records: []string{"allowed"}, evals: 1},
		{desc: "stale view refuses a dry run too", stale: true, dry: true,
			event: "unavailable", status: 503, slug: "state-unavailable", evals: 1},

		// Dry runs (POST /v1/check) write nothing.
		{desc: "dry run allowed", dry: true, allowed: true, event: "allowed", evals: 1},
		{desc: "dry run on a grant", dry: true, live: []grants.Grant{live}, decide: allowBy(live.ID),
			allowed: true, event: "allowed", grant: live.ID, evals: 1},
		{desc: "dry run refused", dry: true, decide: needGrant,
			event: "grant_required", status: 403, slug: "grant-required", evals: 1},

		// The audit log.
		{desc: "audit failure refuses an ungated read", auditErr: errors.New("disk full"),
			event: "unavailable", status: 503, slug: "audit-unavailable", detail: "the audit log cannot be written; the call was refused", evals: 1},
		{desc: "audit failure with reads_without_audit lets an ungated read through", auditErr: errors.New("disk full"), readsWithoutAudit: true,
			allowed: true, event: "allowed", evals: 1},
		{desc: "audit failure refuses a gated call also with reads_without_audit", auditErr: errors.New("disk full"), readsWithoutAudit: true,
			live: []grants.Grant{live}, decide: allowBy(live.ID),
			event: "unavailable", status: 503, slug: "audit-unavailable", grant: live.ID, evals: 1},
		{desc: "audit failure keeps a refusal a refusal", auditErr: errors.New("disk full"), decide: needGrant,
			event: "grant_required", status: 403, slug: "grant-required", evals: 1},

		// Grants with a limited number of uses.
		{desc: "limited grant without a use counter", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			event: "grant_required", status: 403, slug: "grant-required",
			detail:  "this grant allows a limited number of calls and uses cannot be counted here; the call was refused",
			records: []string{"grant_required"}, grant: limited.ID, evals: 1},
		{desc: "limited grant: the use is spent, then the record written", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			uses: &fakeUses{use: grants.Use{N: 1, MaxUses: 2}}, allowed: true, event: "allowed", records: []string{"allowed"},
			grant: limited.ID, request: limited.RequestID, evals: 1, trail: []string{"use", "record allowed"}},
		{desc: "limited grant used up through another replica", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			uses: &fakeUses{err: grants.ErrUsedUp}, event: "grant_required", status: 403, slug: "grant-used-up",
			records: []string{"grant_required"}, reason: "the grant of request req-limited allowed 2 calls, all spent",
			grant: limited.ID, request: limited.RequestID, evals: 1, trail: []string{"record grant_required"}},
		{desc: "limited grant revoked meanwhile", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			uses: &fakeUses{err: grants.ErrNotApproved}, event: "grant_required", status: 403, slug: "grant-required",
			records: []string{"grant_required"}, grant: limited.ID, evals: 1},
		{desc: "limited grant gone", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			uses: &fakeUses{err: grants.ErrNotFound}, event: "grant_required", status: 403, slug: "grant-required",
			records: []string{"grant_required"}, grant: limited.ID, evals: 1},
		{desc: "limited grant whose use cannot be recorded", live: []grants.Grant{limited}, decide: allowBy(limited.ID),
			uses: &fakeUses{err: errors.New("etcd: context deadline exceeded")}, event: "unavailable", status: 503, slug: "state-unavailable",
			detail: "the grant's use could not be recorded; the call was refused", records: []string{"unavailable"},
			reason: "the grant's use could not be recorded; the call was refused", grant: limited.ID, evals: 1},
		{desc: "limited grant, dry run spends nothing", live: []grants.Grant{limited}, decide: allowBy(limited.ID), dry: true,
			uses: &fakeUses{}, allowed: true, event: "allowed", grant: limited.ID, evals: 1},

		// A call that needs a grant.
		{desc: "grant required", decide: needGrant,
			event: "grant_required", status: 403, slug: "grant-required",
			detail:  gateTask + " needs an approved grant. Request one with: " + roleCommand,
			records: []string{"grant_required"}, reason: "needs a grant", evals: 1},
		{desc: "used-up grant that would allow the call is named", usedUp: []grants.Grant{spent}, decide: allowByGrantIn(spent.ID),
			event: "grant_required", status: 403, slug: "grant-used-up",
			detail:  gateTask + ": the grant of request req-spent allowed 2 calls, all spent. Request a new grant with: " + roleCommand,
			records: []string{"grant_required"}, reason: "the grant of request req-spent allowed 2 calls, all spent",
			spent: spent.ID, request: spent.RequestID, evals: 2},
		{desc: "used-up grant that would not allow the call is not named", usedUp: []grants.Grant{spent}, decide: needGrant,
			event: "grant_required", status: 403, slug: "grant-required", records: []string{"grant_required"}, evals: 2},
		{desc: "used-up grant, second evaluation fails", usedUp: []grants.Grant{spent}, decide: failSecond,
			event: "grant_required", status: 403, slug: "grant-required", records: []string{"grant_required"}, evals: 2},
		{desc: "used-up grant, second evaluation allows by another grant", usedUp: []grants.Grant{spent},
			live: []grants.Grant{live}, decide: func(in policy.Input) (policy.Decision, error) {
				if len(in.Grants) > 1 {
					return allowBy(live.ID)(in)
				}
				return needGrant(in)
			}, event: "grant_required", status: 403, slug: "grant-required", records: []string{"grant_required"}, evals: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var trail []string
			verifier := &fakeVerifier{id: alice, err: tc.verifyErr}
			view := &fakeView{live: map[string][]grants.Grant{"alice": tc.live}, usedUp: map[string][]grants.Grant{"alice": tc.usedUp}, stale: tc.stale}
			decide := tc.decide
			if decide == nil {
				decide = allowRead
			}
			decider := &fakeDecider{decide: decide}
			auditor := &fakeAuditor{err: tc.auditErr, trail: &trail}
			cfg := proxy.GateConfig{Verifier: verifier, Grants: view, Policy: decider, Audit: auditor,
				Now: func() time.Time { return now }, ReadsWhenStale: tc.readsWhenStale, ReadsWithoutAudit: tc.readsWithoutAudit,
				Logger: slog.New(slog.DiscardHandler)}
			if tc.uses != nil {
				tc.uses.trail = &trail
				cfg.Uses = tc.uses
			}
			gate, err := proxy.NewGate(cfg)
			require.NoError(t, err)

			call := proxy.Call{Method: http.MethodPost, Upstream: "exchange", Host: "exchange.elevate.test",
				Path: []string{"mailboxes", "a/b", "search"}, Query: url.Values{"q": {"x"}}, Token: "alice-token", DryRun: tc.dry}
			if tc.noToken {
				call.Token = ""
			}
			v := gate.Check(context.Background(), call)

			require.Equal(t, tc.allowed, v.Allowed)
			require.Equal(t, tc.event, v.Event)
			require.NotEmpty(t, v.DecisionID)
			require.Equal(t, tc.event == "unauthenticated", v.Unauthenticated)
			if tc.allowed {
				require.Nil(t, v.Problem)
			} else {
				require.NotNil(t, v.Problem)
				require.Equal(t, tc.status, v.Problem.Status)
				require.Equal(t, "urn:elevate:problem:"+tc.slug, v.Problem.Type, v.Problem.Detail)
				require.Equal(t, http.StatusText(tc.status), v.Problem.Title)
				require.Equal(t, v.DecisionID, v.Problem.DecisionID, "every refusal carries its decision id")
				if tc.detail != "" {
					require.Equal(t, tc.detail, v.Problem.Detail)
				}
				require.NotContains(t, v.Problem.Detail, "10.9.8.7", "no internal detail")
				require.NotContains(t, v.Problem.Detail, "internal detail")
				require.NotContains(t, v.Problem.Detail, "deadline")
			}
			switch {
			case tc.grant != "" && v.Event != "error":
				require.NotNil(t, v.Grant)
				require.Equal(t, tc.grant, v.Grant.ID)
			default:
				require.Nil(t, v.Grant)
			}
			if tc.slug == "grant-required" || tc.slug == "grant-used-up" {
				require.Equal(t, gateTask, v.Problem.Task)
				require.Equal(t, roleCommand, v.Problem.Request)
			}

			// Identity: an empty token never reaches the verifier.
			if tc.noToken {
				require.Zero(t, verifier.calls)
			} else {
				require.Equal(t, 1, verifier.calls)
			}

			// The policy: judged at the gate's clock on exactly the call,
			// the caller and the caller's live grants.
			require.Len(t, decider.inputs, tc.evals)
			if tc.evals > 0 {
				in := decider.inputs[0]
				require.Equal(t, now, decider.times[0])
				require.Equal(t, policy.Subject{ID: "alice", Groups: []string{"helpdesk"}, MFA: true, Email: "alice@example.test"}, in.Subject)
				require.Equal(t, "POST", in.Method)
				require.Equal(t, "exchange", in.Upstream)
				require.Equal(t, "exchange.elevate.test", in.Host)
				require.Equal(t, []string{"mailboxes", "a/b", "search"}, in.Path)
				require.Equal(t, map[string][]string{"q": {"x"}}, in.Query)
				require.Len(t, in.Grants, len(tc.live))
				for i, g := range tc.live {
					require.Equal(t, policy.Grant{ID: g.ID, RequestID: g.RequestID, Scope: string(g.Scope), Target: g.Target,
						NotBefore: g.NotBefore, ExpiresAt: g.ExpiresAt}, in.Grants[i])
				}
			}
			if tc.evals == 2 {
				// The used-up grants are judged as if live, after the live ones.
				in := decider.inputs[1]
				require.Len(t, in.Grants, len(tc.live)+len(tc.usedUp))
				for i, g := range tc.usedUp {
					require.Equal(t, g.ID, in.Grants[len(tc.live)+i].ID)
				}
				require.Len(t, decider.inputs[0].Grants, len(tc.live), "the first input is left as it was")
			}

			// The records.
			recs := auditor.written()
			var events []string
			for _, r := range recs {
				events = append(events, r.Event)
			}
			require.Equal(t, tc.records, events)
			if len(recs) > 0 {
				r := recs[0]
				require.Equal(t, v.DecisionID, r.ID, "the record's id is the decision id")
				require.Equal(t, now, r.Time)
				require.Equal(t, audit.KindCall, r.Kind)
				require.Equal(t, "exchange", r.Upstream)
				require.Equal(t, "POST", r.Method)
				require.Equal(t, "exchange.elevate.test", r.Host)
				require.Equal(t, "/mailboxes/a%2Fb/search", r.Path, "the path as forwarded")
				if !tc.noToken && tc.verifyErr == nil {
					require.Equal(t, "alice", r.Subject)
					require.Equal(t, []string{"helpdesk"}, r.Groups)
				} else {
					require.Empty(t, r.Subject)
				}
				if !tc.allowed {
					require.Equal(t, tc.status, r.Status)
				}
				if tc.reason != "" {
					require.Equal(t, tc.reason, r.Reason)
				}
				if tc.request != "" {
					require.Equal(t, tc.grant+tc.spent, r.GrantID)
					require.Equal(t, tc.request, r.RequestID)
				}
				if tc.request == live.RequestID {
					require.Equal(t, []string{"carol"}, r.Approvers)
				}
			}
			if tc.trail != nil {
				require.Equal(t, tc.trail, trail)
			}
			if tc.uses != nil {
				if tc.dry {
					require.Empty(t, tc.uses.grants, "a dry run spends no use")
				} else {
					require.Equal(t, []string{limited.ID}, tc.uses.grants)
				}
			}
		})
	}
}

// expiredTokenError is the error a real verifier gives for an expired
// token.
func expiredTokenError(t *testing.T) error {
	t.Helper()
	iss := newTestIssuer(t)
	_, err := iss.verifier.Verify(context.Background(), iss.token(t, "alice", -time.Hour))
	require.ErrorIs(t, err, identity.ErrUnauthenticated)
	return err
}

func TestNewGateNeedsEveryPart(t *testing.T) {
	full := proxy.GateConfig{Verifier: &fakeVerifier{}, Grants: &fakeView{}, Policy: &fakeDecider{}, Audit: &fakeAuditor{}}
	_, err := proxy.NewGate(full)
	require.NoError(t, err)
	for _, drop := range []func(*proxy.GateConfig){
		func(c *proxy.GateConfig) { c.Verifier = nil },
		func(c *proxy.GateConfig) { c.Grants = nil },
		func(c *proxy.GateConfig) { c.Policy = nil },
		func(c *proxy.GateConfig) { c.Audit = nil },
	} {
		cfg := full
		drop(&cfg)
		_, err := proxy.NewGate(cfg)
		require.Error(t, err)
	}
}

// TestGateRefuse: a call refused before it could be judged is recorded
// under a new decision id, which its problem carries.
func TestGateRefuse(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	auditor := &fakeAuditor{}
	gate, err := proxy.NewGate(proxy.GateConfig{Verifier: &fakeVerifier{}, Grants: &fakeView{}, Policy: &fakeDecider{}, Audit: auditor,
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	for _, tc := range []struct {
		rec    audit.Record
		reason string
	}{
		{rec: audit.Record{Event: "bad_request", Method: "GET", Host: "elevate.test"}, reason: "the path is ambiguous"},
		{rec: audit.Record{Event: "denied", Method: "CONNECT", Reason: "CONNECT to a host that is not configured"}, reason: "CONNECT to a host that is not configured"},
	} {
		p := gate.Refuse(context.Background(), tc.rec, proxy.NewProblem(http.StatusBadRequest, "ambiguous-path", "the path is ambiguous"))
		recs := auditor.written()
		r := recs[len(recs)-1]
		require.NotEmpty(t, p.DecisionID)
		require.Equal(t, p.DecisionID, r.ID)
		require.Equal(t, now, r.Time)
		require.Equal(t, audit.KindCall, r.Kind)
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Equal(t, tc.rec.Event, r.Event)
		require.Equal(t, tc.rec.Method, r.Method)
		require.Equal(t, tc.reason, r.Reason, "the problem's detail when the record has no reason")
	}
}

// appendAuditor is an Auditor that also has Append, as audit.Log has.
type appendAuditor struct {
	fakeAuditor
	appended chan audit.Record
}

func (a *appendAuditor) Append(_ context.Context, r audit.Record) (audit.Record, error) {
	a.appended <- r
	return r, nil
}

// TestGateOutcome: an allowed call's outcome is recorded after its
// decision, linked to it, with Append when the auditor has it; Drain
// waits for it.
func TestGateOutcome(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	live := grants.Grant{ID: "grt-1", RequestID: "req-1", Subject: "alice", Scope: grants.ScopeTask, Target: gateTask,
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}
	call := proxy.Call{Method: "POST", Upstream: "exchange", Host: "elevate.test", Path: []string{"mailboxes", "m", "search"}, Token: "t"}
	outcome := proxy.Outcome{Status: http.StatusBadGateway, Bytes: 7, Duration: 1500 * time.Microsecond, Reason: "cut short"}
	// judge lets call through a gate writing to a, records its outcome
	// and waits for the outcome record.
	judge := func(t *testing.T, a proxy.Auditor) proxy.Verdict {
		gate, err := proxy.NewGate(proxy.GateConfig{Verifier: &fakeVerifier{id: identity.Identity{Subject: "alice"}},
			Grants: &fakeView{live: map[string][]grants.Grant{"alice": {live}}}, Policy: &fakeDecider{decide: allowBy(live.ID)},
			Audit: a, Now: func() time.Time { return now }})
		require.NoError(t, err)
		v := gate.Check(context.Background(), call)
		require.True(t, v.Allowed)
		gate.Outcome(context.Background(), v, call, outcome)
		gate.Drain()
		return v
	}
	check := func(t *testing.T, v proxy.Verdict, r audit.Record) {
		require.Equal(t, "outcome", r.Event)
		require.Equal(t, audit.KindCall, r.Kind)
		require.Equal(t, v.DecisionID, r.Ref)
		require.Equal(t, "alice", r.Subject)
		require.Equal(t, gateTask, r.Task)
		require.Equal(t, "grt-1", r.GrantID)
		require.Equal(t, "req-1", r.RequestID)
		require.Equal(t, "/mailboxes/m/search", r.Path)
		require.Equal(t, http.StatusBadGateway, r.Status)
		require.Equal(t, int64(7), r.Bytes)
		require.Equal(t, 1.5, r.DurationMS)
		require.Equal(t, "cut short", r.Reason)
	}

	t.Run("append", func(t *testing.T) {
		a := &appendAuditor{appended: make(chan audit.Record, 1)}
		v := judge(t, a)
		check(t, v, <-a.appended)
		require.Len(t, a.written(), 1, "only the decision waits for durability")
	})
	t.Run("write", func(t *testing.T) {
		a := &fakeAuditor{}
		v := judge(t, a)
		recs := a.written()
		require.Len(t, recs, 2)
		check(t, v, recs[1])
	})
}
