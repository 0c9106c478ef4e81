package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

func TestDefaultBundleIsCacheable(t *testing.T) {
	ok, why := newEngine(t, defaultBundle()).Cacheable()
	require.True(t, ok, why)

	e, err := policy.New(context.Background(), policy.Config{Bundle: defaultBundle(), CacheSize: -1})
	require.NoError(t, err)
	ok, why = e.Cacheable()
	require.False(t, ok)
	require.Contains(t, why, "turned off")
}

// A bundle that reads the clock for anything but a grant's window, or calls
// another nondeterministic built-in, is evaluated for every call.
func TestClockAndNondeterminismTurnTheCacheOff(t *testing.T) {
	hours, err := os.ReadFile("testdata/business_hours.rego")
	require.NoError(t, err)
	cases := map[string]struct{ src, why string }{
		"business hours": {string(hours), "reads time.now_ns()"},
		"now kept in a variable": {`package elevate
deny contains "late" if {
	some g in input.grants
	now := time.now_ns()
	g.expires_at_ns - now < 1000
}`, "reads time.now_ns()"},
		"now compared with data": {`package elevate
deny contains "after the freeze" if {
	some g in input.grants
	g.not_before_ns < 0
	time.now_ns() > data.freeze.expires_at_ns
}`, "reads time.now_ns()"},
		"window of something not from input.grants": {`package elevate
deny contains "x" if {
	some g in data.other
	time.now_ns() > g.expires_at_ns
}`, "reads time.now_ns()"},
		"now in a rule head": {`package elevate
started := time.now_ns()`, "reads time.now_ns()"},
		"random": {`package elevate
deny contains "unlucky" if rand.intn("x", 10) == 0`, "calls rand.intn"},
		"uuid": {`package elevate
deny contains "x" if uuid.rfc4122("k") == ""`, "calls uuid.rfc4122"},
		"token check in Rego": {`package elevate
deny contains "bad token" if {
	[ok, _, _] := io.jwt.decode_verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln", {"secret": "s"})
	not ok
}`, "calls io.jwt.decode_verify"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, bundleWith(t, map[string]string{"extra.rego": c.src}))
			ok, why := e.Cacheable()
			require.False(t, ok)
			require.Contains(t, why, "extra.rego")
			require.Contains(t, why, c.why)
		})
	}
}

// With business hours the same call changes its decision as the clock
// moves, and no cache hides it.
func TestClockRulesAreEvaluatedEachTime(t *testing.T) {
	hours, err := os.ReadFile("testdata/business_hours.rego")
	require.NoError(t, err)
	e := newEngine(t, bundleWith(t, map[string]string{"business_hours.rego": string(hours)}))
	require.NoError(t, e.SetState(context.Background(), gatedBy(policy.ScopeTask, searchMailbox)))
	in := call("POST", "mailboxes", "mbx-1", "search")
	monday10 := time.Date(2025, 6, 16, 10, 0, 0, 0, time.UTC)
	in.Grants = []policy.Grant{{ID: "g1", RequestID: "r1", Scope: policy.ScopeTask, Target: searchMailbox,
		NotBefore: monday10.Add(-time.Hour), ExpiresAt: monday10.Add(24 * time.Hour)}}
	_ = monday10

	for _, c := range []struct {
		at   time.Time
		want policy.Outcome
	}{
		{monday10, policy.Allow},
		{monday10.Add(8*time.Hour + time.Nanosecond), policy.Deny},
		{monday10.Add(time.Minute), policy.Allow},
	} {
		d, err := e.Eval(context.Background(), in, c.at)
		require.NoError(t, err)
		require.Equal(t, c.want, d.Outcome, "at %s", c.at)
	}
}

// The cache answers as Rego would at every instant around a grant's window
// ends, in every state generation and after a reload.
func TestCachedDecisionsMatchRego(t *testing.T) {
	ctx := context.Background()
	cached := newEngine(t, defaultBundle())
	fresh, err := policy.New(ctx, policy.Config{Bundle: defaultBundle(), CacheSize: -1})
	require.NoError(t, err)

	nb, exp := t0, t0.Add(time.Hour)
	in := call("POST", "mailboxes", "mbx-1", "search")
	in.Grants = []policy.Grant{{ID: "g1", RequestID: "r1", Scope: policy.ScopeTask, Target: searchMailbox, NotBefore: nb, ExpiresAt: exp}}
	other := in
	other.Grants = append([]policy.Grant{{ID: "g0", RequestID: "r0", Scope: policy.ScopeTask, Target: getMailbox,
		NotBefore: nb.Add(-time.Minute), ExpiresAt: nb.Add(time.Minute)}}, in.Grants...)
	var instants []time.Time
	for _, b := range []time.Time{nb, exp, nb.Add(-time.Minute), nb.Add(time.Minute)} {
		for _, d := range []time.Duration{-time.Second, -1, 0, 1, time.Second} {
			instants = append(instants, b.Add(d))
		}
	}
	states := []policy.State{
		gatedBy(policy.ScopeTask, searchMailbox),
		{Control: policy.Control{Enabled: false}},
		gatedBy(policy.ScopeRole, importExport),
		gatedBy(policy.ScopeTask, searchMailbox),
	}
	check := func(label string) {
		for _, st := range states {
			require.NoError(t, cached.SetState(ctx, st))
			require.NoError(t, fresh.SetState(ctx, st))
			for round := range 2 { // the second round is served from the cache
				for _, at := range instants {
					for _, x := range []policy.Input{in, other} {
						want, err := fresh.Eval(ctx, x, at)
						require.NoError(t, err)
						got, err := cached.Eval(ctx, x, at)
						require.NoError(t, err)
						require.Equal(t, want, got, "%s, round %d, at %s, state %+v", label, round, at.Sub(t0), st.Control)
					}
				}
			}
		}
	}
	check("before reload")
	require.NoError(t, cached.Reload(ctx, defaultBundle()))
	check("after reload")

	// A grant that is gone changes the input, so the decision with it is
	// not reused.
	require.NoError(t, cached.SetState(ctx, gatedBy(policy.ScopeTask, searchMailbox)))
	at := t0.Add(time.Minute)
	d, err := cached.Eval(ctx, in, at)
	require.NoError(t, err)
	require.Equal(t, policy.Allow, d.Outcome)
	without := in
	without.Grants = nil
	d, err = cached.Eval(ctx, without, at)
	require.NoError(t, err)
	require.Equal(t, policy.GrantRequired, d.Outcome)
	require.NotNil(t, d.Request)
	d.Request.Target = "changed by the caller"
	d, err = cached.Eval(ctx, without, at)
	require.NoError(t, err)
	require.Equal(t, searchMailbox, d.Request.Target, "a cached decision is never shared")
}

// Inputs that differ in any part never share a cache entry.
func TestCacheKeySeparatesInputs(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(ctx, gatedBy(policy.ScopeTask, searchMailbox)))
	base := call("POST", "mailboxes", "mbx-1", "search")
	base.Grants = []policy.Grant{liveGrant("g1", policy.ScopeTask, searchMailbox)}
	d, err := e.Eval(ctx, base, t0)
	require.NoError(t, err)
	require.Equal(t, policy.Allow, d.Outcome)

	variants := map[string]func(in *policy.Input){
		"method":        func(in *policy.Input) { in.Method = "GET" },
		"path split":    func(in *policy.Input) { in.Path = []string{"mailboxes/mbx-1", "search"} },
		"path joined":   func(in *policy.Input) { in.Path = []string{"mailboxesmbx-1", "search"} },
		"upstream":      func(in *policy.Input) { in.Upstream = "caddy" },
		"subject":       func(in *policy.Input) { in.Subject.ID = "svc-backup" },
		"grant target":  func(in *policy.Input) { in.Grants[0].Target = getMailbox },
		"grant expired": func(in *policy.Input) { in.Grants[0].ExpiresAt = t0 },
		"grant future":  func(in *policy.Input) { in.Grants[0].NotBefore = t0.Add(time.Second) },
		"no grant":      func(in *policy.Input) { in.Grants = nil },
	}
	fresh, err := policy.New(ctx, policy.Config{Bundle: defaultBundle(), CacheSize: -1})
	require.NoError(t, err)
	require.NoError(t, fresh.SetState(ctx, gatedBy(policy.ScopeTask, searchMailbox)))
	for name, change := range variants {
		in := base
		in.Path = append([]string(nil), base.Path...)
		in.Grants = append([]policy.Grant(nil), base.Grants...)
		change(&in)
		want, err := fresh.Eval(ctx, in, t0)
		require.NoError(t, err)
		got, err := e.Eval(ctx, in, t0)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
		require.NotEqual(t, d, got, "%s must not reuse the first decision", name)
	}
}

// Bodies that differ never share a cache entry: each decision echoes the
// body it was taken on, evaluated once and then served from the cache.
func TestCacheKeySeparatesBodies(t *testing.T) {
	e := newEngine(t, bundleOf(map[string]string{
		"p.rego": "package elevate\n\ndecision := {\"outcome\": \"deny\", \"reason\": json.marshal(object.get(input, \"body\", \"none\"))}\n",
	}))
	ok, why := e.Cacheable()
	require.True(t, ok, why)
	bodies := []any{nil, map[string]any{}, []any{}, "", "ab", json.Number("1"), json.Number("12"), true, false,
		map[string]any{"a": "b"}, map[string]any{"a": []any{"b"}}, map[string]any{"ab": ""}, map[string]any{"a": "", "b": ""},
		map[string]any{"a": map[string]any{"b": "c"}}, map[string]any{"a": nil}, []any{"a", "b"}, []any{"ab"}, []any{[]any{"a"}, "b"},
		map[string][]string{"a": {"b", "c"}}, map[string][]string{"a": {"bc"}}}
	for round := range 2 {
		for _, body := range bodies {
			in := call("POST", "x")
			in.Body = body
			d, err := e.Eval(context.Background(), in, t0)
			require.NoError(t, err)
			want := `"none"`
			if body != nil {
				b, err := json.Marshal(body)
				require.NoError(t, err)
				want = string(b)
			}
			require.JSONEq(t, want, d.Reason, "round %d, body %v", round, body)
		}
	}
}
