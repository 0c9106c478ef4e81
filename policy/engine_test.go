package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// 2025-06-16T12:00:00Z, a Monday.
var t0 = time.Date(2025, 6, 16, 12, 0, 0, 0, time.UTC)

const (
	getMailbox     = `Exchange\Get-Mailbox`
	newMoveRequest = `Exchange\New-MoveRequest`
	searchMailbox  = `Exchange\Search-Mailbox`
	newJournalRule = `Exchange\New-JournalRule`
	rmJournalRule  = `Exchange\Remove-JournalRule`
	importExport   = `Exchange\Mailbox Import Export`
	orgManagement  = `Exchange\Organization Management`
)

// defaultBundle is the default bundle as it is on disk, the same files the
// rego package embeds.
func defaultBundle() fs.FS { return os.DirFS("../rego") }

// bundleWith is the default bundle plus, or with replaced, files.
func bundleWith(t testing.TB, files map[string]string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(defaultBundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(defaultBundle(), p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	require.NoError(t, err)
	for name, src := range files {
		out[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return out
}

// bundleOf is a bundle made of files only.
func bundleOf(files map[string]string) fstest.MapFS {
	out := fstest.MapFS{}
	for name, src := range files {
		out[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return out
}

func newEngine(t *testing.T, bundle fs.FS) *policy.Engine {
	t.Helper()
	e, err := policy.New(context.Background(), policy.Config{Bundle: bundle})
	require.NoError(t, err)
	return e
}

func call(method string, path ...string) policy.Input {
	return policy.Input{
		Method:   method,
		Upstream: "exchange",
		Host:     "exchange.elevate.test",
		Path:     path,
		Subject:  policy.Subject{ID: "alice", Groups: []string{"helpdesk"}, MFA: true},
	}
}

func gatedBy(scope, target string) policy.State {
	return policy.State{
		Control: policy.Control{Enabled: true, DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}},
		Policies: []policy.ApprovalPolicy{
			{ID: "p1", Scope: scope, Target: target, Approval: "manual", Approvers: "approvers"},
		},
	}
}

func liveGrant(id, scope, target string) policy.Grant {
	return policy.Grant{ID: id, RequestID: "r-" + id, Scope: scope, Target: target,
		NotBefore: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour)}
}

func eval(t *testing.T, e *policy.Engine, in policy.Input) policy.Decision {
	t.Helper()
	d, err := e.Eval(context.Background(), in, t0)
	require.NoError(t, err)
	return d
}

func TestEvalMapsEveryDemoCallToItsTask(t *testing.T) {
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(context.Background(), policy.State{}))

	tests := []struct {
		desc string
		in   policy.Input
		want string
	}{
		{"list mailboxes", call("GET", "mailboxes"), getMailbox},
		{"read a mailbox", call("GET", "mailboxes", "mbx-1"), getMailbox},
		{"read a mailbox whose id holds a slash", call("GET", "mailboxes", "a/b"), getMailbox},
		{"HEAD of the list", call("HEAD", "mailboxes"), getMailbox},
		{"HEAD of a mailbox", call("HEAD", "mailboxes", "mbx-1"), getMailbox},
		{"move a mailbox", call("POST", "mailboxes", "mbx-1", "move-requests"), newMoveRequest},
		{"search a mailbox", call("POST", "mailboxes", "mbx-1", "search"), searchMailbox},
		{"create a journal rule", call("POST", "journal-rules"), newJournalRule},
		{"delete a journal rule", call("DELETE", "journal-rules", "jr-1"), rmJournalRule},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d := eval(t, e, tc.in)
			require.Equal(t, policy.Decision{Outcome: policy.Allow, Task: tc.want, Reason: "task is not gated"}, d)
		})
	}
}

func TestEvalRefusesUnknownCalls(t *testing.T) {
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	other := call("GET", "mailboxes")
	other.Upstream = "rabbitmq"

	tests := []struct {
		desc string
		in   policy.Input
	}{
		{"unknown collection", call("GET", "transport-rules")},
		{"unknown method", call("PATCH", "mailboxes", "mbx-1")},
		{"HEAD of a write", call("HEAD", "journal-rules")},
		{"empty id", call("GET", "mailboxes", "")},
		{"no path", call("GET")},
		{"another upstream", other},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d := eval(t, e, tc.in)
			require.Equal(t, policy.Decision{Outcome: policy.Deny, Reason: "no task in the catalog matches this call"}, d)
		})
	}
}

func TestEvalWithoutCatalogDenies(t *testing.T) {
	decision, err := os.ReadFile("../rego/elevate.rego")
	require.NoError(t, err)
	e := newEngine(t, bundleOf(map[string]string{"elevate.rego": string(decision)}))
	require.NoError(t, e.SetState(context.Background(), policy.State{}))

	d := eval(t, e, call("GET", "mailboxes"))
	require.Equal(t, policy.Decision{Outcome: policy.Deny, Reason: "the policy reached no decision"}, d)
	require.Empty(t, e.Catalog().Tasks)
}

func TestEvalGatingAndGrants(t *testing.T) {
	search := call("POST", "mailboxes", "mbx-1", "search")
	holding := func(in policy.Input, gs ...policy.Grant) policy.Input {
		in.Grants = gs
		return in
	}
	system := search
	system.Subject.ID = "svc-backup"
	byTask := gatedBy("task", searchMailbox)
	disabled := byTask
	disabled.Control.Enabled = false
	needs := func(scope, target string) policy.Decision {
		return policy.Decision{Outcome: policy.GrantRequired, Task: searchMailbox, Gated: true,
			Reason:  `task Exchange\Search-Mailbox requires an approved grant`,
			Request: &policy.Target{Scope: scope, Target: target}}
	}
	required := needs("task", searchMailbox)
	notGated := policy.Decision{Outcome: policy.Allow, Task: searchMailbox, Reason: "task is not gated"}
	granted := func(id string) policy.Decision {
		return policy.Decision{Outcome: policy.Allow, Task: searchMailbox, Gated: true, GrantID: id,
			Reason: "covered by an approved grant"}
	}

	tests := []struct {
		desc  string
		state policy.State
		in    policy.Input
		want  policy.Decision
	}{
		{"enabled, no policy", policy.State{Control: policy.Control{Enabled: true}}, search, notGated},
		{"policy on the task", byTask, search, required},
		{"policy on a role holding the task", gatedBy("role", importExport), search, needs("role", importExport)},
		{"policy on a role group holding the task", gatedBy("rolegroup", orgManagement), search, needs("rolegroup", orgManagement)},
		{"policy on another task", gatedBy("task", newJournalRule), search, notGated},
		{"policy on an unknown role", gatedBy("role", `Exchange\Nobody`), search, notGated},
		{"control disabled", disabled, search, notGated},
		{"HEAD is gated as GET", gatedBy("task", getMailbox), call("HEAD", "mailboxes"),
			policy.Decision{Outcome: policy.GrantRequired, Task: getMailbox, Gated: true,
				Reason: `task Exchange\Get-Mailbox requires an approved grant`, Request: &policy.Target{Scope: "task", Target: getMailbox}}},
		{"system account", byTask, system,
			policy.Decision{Outcome: policy.Allow, Task: searchMailbox, Gated: true, Reason: "system account"}},
		{"grant for the task", byTask, holding(search, liveGrant("g1", "task", searchMailbox)), granted("g1")},
		{"grant for a role holding the task", byTask, holding(search, liveGrant("g1", "role", importExport)), granted("g1")},
		{"grant for a role group holding the task", byTask, holding(search, liveGrant("g1", "rolegroup", orgManagement)), granted("g1")},
		{"grant for another task", byTask, holding(search, liveGrant("g1", "task", newMoveRequest)), required},
		{"grant for a role without the task", gatedBy("task", newJournalRule),
			holding(call("POST", "journal-rules"), liveGrant("g1", "role", importExport)),
			policy.Decision{Outcome: policy.GrantRequired, Task: newJournalRule, Gated: true,
				Reason: `task Exchange\New-JournalRule requires an approved grant`, Request: &policy.Target{Scope: "task", Target: newJournalRule}}},
		{"expired grant", byTask, holding(search, policy.Grant{ID: "g1", Scope: "task", Target: searchMailbox,
			NotBefore: t0.Add(-2 * time.Hour), ExpiresAt: t0.Add(-time.Nanosecond)}), required},
		{"grant ending now", byTask, holding(search, policy.Grant{ID: "g1", Scope: "task", Target: searchMailbox,
			NotBefore: t0.Add(-time.Hour), ExpiresAt: t0}), required},
		{"grant not yet started", byTask, holding(search, policy.Grant{ID: "g1", Scope: "task", Target: searchMailbox,
			NotBefore: t0.Add(time.Nanosecond), ExpiresAt: t0.Add(time.Hour)}), required},
		{"grant starting now", byTask, holding(search, policy.Grant{ID: "g1", Scope: "task", Target: searchMailbox,
			NotBefore: t0, ExpiresAt: t0.Add(time.Hour)}), granted("g1")},
		{"grant without an end", byTask, holding(search, policy.Grant{ID: "g1", Scope: "task", Target: searchMailbox,
			NotBefore: t0.Add(-time.Hour)}), required},
		{"of two grants, the one that ends last", byTask, holding(search,
			liveGrant("a", "task", searchMailbox),
			policy.Grant{ID: "b", Scope: "role", Target: importExport, NotBefore: t0.Add(-time.Hour), ExpiresAt: t0.Add(2 * time.Hour)},
		), granted("b")},
		{"of two grants ending together, the smallest id", byTask, holding(search,
			liveGrant("c", "task", searchMailbox), liveGrant("b", "rolegroup", orgManagement),
		), granted("b")},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEngine(t, defaultBundle())
			require.NoError(t, e.SetState(context.Background(), tc.state))
			require.Equal(t, tc.want, eval(t, e, tc.in))
		})
	}
}

func TestEvalDeniesUntilStateIsSet(t *testing.T) {
	e := newEngine(t, defaultBundle())
	d := eval(t, e, call("GET", "mailboxes"))
	require.Equal(t, policy.Deny, d.Outcome)
	require.Equal(t, "access-control state is not loaded", d.Reason)

	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	require.Equal(t, policy.Allow, eval(t, e, call("GET", "mailboxes")).Outcome)
}

func TestSetStateTakesEffectImmediately(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, defaultBundle())
	search := call("POST", "mailboxes", "mbx-1", "search")

	require.NoError(t, e.SetState(ctx, policy.State{Control: policy.Control{Enabled: true}}))
	require.Equal(t, policy.Allow, eval(t, e, search).Outcome)

	require.NoError(t, e.SetState(ctx, gatedBy("role", importExport)))
	require.Equal(t, policy.GrantRequired, eval(t, e, search).Outcome)

	st := gatedBy("role", importExport)
	st.Control.SystemAccounts = []string{"alice"}
	require.NoError(t, e.SetState(ctx, st))
	require.Equal(t, "system account", eval(t, e, search).Reason)

	st.Control.Enabled = false
	require.NoError(t, e.SetState(ctx, st))
	require.Equal(t, "task is not gated", eval(t, e, search).Reason)
}

func TestSetStateRefusesInvalidState(t *testing.T) {
	ctx := context.Background()
	valid := policy.ApprovalPolicy{ID: "p1", Scope: "task", Target: searchMailbox, Approval: "manual"}
	with := func(change func(*policy.ApprovalPolicy)) policy.ApprovalPolicy {
		p := valid
		change(&p)
		return p
	}
	tests := []struct {
		desc  string
		state policy.State
	}{
		{"policy without id", policy.State{Policies: []policy.ApprovalPolicy{with(func(p *policy.ApprovalPolicy) { p.ID = "" })}}},
		{"repeated policy id", policy.State{Policies: []policy.ApprovalPolicy{valid, with(func(p *policy.ApprovalPolicy) { p.Target = getMailbox })}}},
		{"unknown scope", policy.State{Policies: []policy.ApprovalPolicy{with(func(p *policy.ApprovalPolicy) { p.Scope = "tenant" })}}},
		{"policy without target", policy.State{Policies: []policy.ApprovalPolicy{with(func(p *policy.ApprovalPolicy) { p.Target = "" })}}},
		{"empty system account", policy.State{Control: policy.Control{SystemAccounts: []string{""}}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEngine(t, defaultBundle())
			require.NoError(t, e.SetState(ctx, gatedBy("task", searchMailbox)))
			tc.state.Control.Enabled = false

			err := e.SetState(ctx, tc.state)
			require.ErrorIs(t, err, policy.ErrInvalidState)
			require.Equal(t, policy.GrantRequired, eval(t, e, call("POST", "mailboxes", "mbx-1", "search")).Outcome,
				"the previous state must stay in force")
		})
	}
}

func TestDenyRuleOverridesEveryAllow(t *testing.T) {
	rule, err := os.ReadFile("testdata/business_hours.rego")
	require.NoError(t, err)
	e := newEngine(t, bundleWith(t, map[string]string{"conditions/business_hours.rego": string(rule)}))
	require.NoError(t, e.SetState(context.Background(), gatedBy("task", searchMailbox)))

	search := call("POST", "mailboxes", "mbx-1", "search")
	search.Grants = []policy.Grant{{ID: "g1", Scope: "task", Target: searchMailbox,
		NotBefore: t0.Add(-72 * time.Hour), ExpiresAt: t0.Add(72 * time.Hour)}}
	system := call("POST", "mailboxes", "mbx-1", "search")
	system.Subject.ID = "svc-backup"
	saturday := time.Date(2025, 6, 21, 12, 0, 0, 0, time.UTC)
	refused := "gated tasks run only on weekdays from 08:00 to 18:00 UTC"

	tests := []struct {
		desc       string
		in         policy.Input
		at         time.Time
		wantOut    policy.Outcome
		wantReason string
	}{
		{"grant holder in business hours", search, t0, policy.Allow, "covered by an approved grant"},
		{"grant holder on Saturday", search, saturday, policy.Deny, refused},
		{"system account in business hours", system, t0, policy.Allow, "system account"},
		{"system account at night", system, t0.Add(10 * time.Hour), policy.Deny, refused},
		{"ungated task on Saturday", call("GET", "mailboxes"), saturday, policy.Allow, "task is not gated"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := e.Eval(context.Background(), tc.in, tc.at)
			require.NoError(t, err)
			require.Equal(t, tc.wantOut, d.Outcome)
			require.Equal(t, tc.wantReason, d.Reason)
			if tc.wantOut == policy.Deny {
				require.Empty(t, d.GrantID)
			}
		})
	}
}

// TestBusinessHoursExample runs the Rego tests of the condition that the
// bundle's README shows, against the default bundle, and checks that the
// README shows these very files.
func TestBusinessHoursExample(t *testing.T) {
	files := map[string]string{}
	for _, name := range []string{"business_hours.rego", "business_hours_test.rego"} {
		src, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		files["conditions/"+name] = string(src)
	}
	bundle, err := policy.ReadBundle(bundleWith(t, files))
	require.NoError(t, err)
	modules := maps.Clone(bundle.Modules)
	maps.Copy(modules, bundle.Tests)
	store := inmem.NewFromObject(bundle.Data)
	ch, err := tester.NewRunner().SetStore(store).SetModules(modules).RaiseBuiltinErrors(true).
		Filter("business_hours_test").RunTests(context.Background(), nil)
	require.NoError(t, err)
	ran := 0
	for r := range ch {
		ran++
		require.NoError(t, r.Error, "%s", r.Location)
		require.False(t, r.Fail, "%s: failed\n%s", r.Location, r.SubResults)
	}
	require.Equal(t, 2, ran)

	readme, err := os.ReadFile("../rego/README.md")
	require.NoError(t, err)
	for _, name := range []string{"testdata/business_hours.rego", "testdata/business_hours_test.rego"} {
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		require.Contains(t, string(readme), string(src), "README.md must show %s as it is", name)
	}
}

// brokenBundles are bundles that New and Reload must refuse: these, and
// the unprovableBundles that compile but cannot evaluate.
var brokenBundles = append([]struct {
	desc  string
	files map[string]string
	where []string // the files and lines the error must name
}{
	{"syntax error", map[string]string{"conditions/broken.rego": "package elevate\n\ndeny contains \"x\" if {\n"}, []string{"conditions/broken.rego:"}},
	{"unsafe variable", map[string]string{"conditions/unsafe.rego": "package elevate\n\ndeny contains x if {\n\ty == 1\n}\n"}, []string{"conditions/unsafe.rego:3"}},
	{"function named as the decision", map[string]string{"conditions/conflict.rego": "package elevate\n\ndecision(x) := x\n"}, []string{"conflict.rego:3"}},
	{"type error", map[string]string{"conditions/types.rego": "package elevate\n\ndeny contains x if {\n\tx := 1 + \"a\"\n}\n"}, []string{"conditions/types.rego:4"}},
	{"Rego v0 syntax", map[string]string{"conditions/v0.rego": "package elevate\n\ndeny[\"x\"] { true }\n"}, []string{"conditions/v0.rego:3"}},
	{"no decision rule", map[string]string{"elevate.rego": "package elevate\n\nother := 1\n"}, nil},
	{"role with an unknown task", map[string]string{"catalog/more.rego": "package elevate.catalog\n\nroles[\"R\"] := {\"Nope\"}\n"}, nil},
	{"data under the state root", map[string]string{"elevate_state/data.json": `{"control": {"enabled": false}}`}, []string{"elevate_state/data.json"}},
	{"data at the state root", map[string]string{"data.yaml": "elevate_state: {}\n"}, []string{"data.yaml"}},
	{"package under the state root", map[string]string{"state.rego": "package elevate_state\n\nx := 1\n"}, []string{"state.rego:1"}},
	{"data file conflicting with a rule", map[string]string{"elevate/data.json": `{"decision": {}}`}, nil},
	{"data file that is not an object", map[string]string{"data.json": `[1, 2]`}, []string{"data.json"}},
	{"unreadable data file", map[string]string{"data.yaml": "a: [1,"}, []string{"data.yaml"}},
}, unprovableBundles...)

func TestNewRefusesBrokenBundles(t *testing.T) {
	for _, tc := range brokenBundles {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := policy.New(context.Background(), policy.Config{Bundle: bundleWith(t, tc.files)})
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			for _, where := range tc.where {
				require.Contains(t, err.Error(), where)
			}
		})
	}
	t.Run("no module", func(t *testing.T) {
		_, err := policy.New(context.Background(), policy.Config{Bundle: bundleOf(map[string]string{"data.json": "{}"})})
		require.ErrorIs(t, err, policy.ErrInvalidBundle)
	})
}

func TestReloadKeepsTheOldBundleOnError(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(ctx, gatedBy("task", searchMailbox)))
	search := call("POST", "mailboxes", "mbx-1", "search")
	before := eval(t, e, search)
	require.Equal(t, policy.GrantRequired, before.Outcome)

	for _, tc := range brokenBundles {
		t.Run(tc.desc, func(t *testing.T) {
			err := e.Reload(ctx, bundleWith(t, tc.files))
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			for _, where := range tc.where {
				require.Contains(t, err.Error(), where)
			}
			require.Equal(t, before, eval(t, e, search))
			require.True(t, e.Catalog().Has("task", searchMailbox))
		})
	}

	t.Run("a good bundle replaces it and keeps the state", func(t *testing.T) {
		extra := "package elevate.catalog\n\n" +
			"tasks[\"Exchange\\\\Get-Journal\"] := {\"upstream\": \"exchange\", \"read\": true}\n\n" +
			"match contains \"Exchange\\\\Get-Journal\" if {\n\tinput.upstream == \"exchange\"\n\tinput.method == \"GET\"\n\tinput.path == [\"journal-rules\"]\n}\n"
		require.NoError(t, e.Reload(ctx, bundleWith(t, map[string]string{"catalog/journal.rego": extra})))
		require.Equal(t, `Exchange\Get-Journal`, eval(t, e, call("GET", "journal-rules")).Task)
		require.True(t, e.Catalog().Has("task", `Exchange\Get-Journal`))
		require.Equal(t, before, eval(t, e, search), "the state must survive the reload")
	})
}

// TestSetStateDuringReload: SetState does not wait for a reload to build
// and prove its bundle, and the state it sets reaches the new bundle.
func TestSetStateDuringReload(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(ctx, policy.State{}))

	bundle := &pausedFS{MapFS: bundleWith(t, map[string]string{"paused/data.json": `{"paused": true}`}),
		opened: make(chan struct{}), release: make(chan struct{})}
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.Reload(ctx, bundle) }()
	select {
	case <-bundle.opened:
	case err := <-reloaded:
		require.FailNow(t, "the reload did not read elevate.rego", "err: %v", err)
	}

	set := make(chan error, 1)
	go func() { set <- e.SetState(ctx, gatedBy("task", searchMailbox)) }()
	select {
	case err := <-set:
		require.NoError(t, err)
	case err := <-reloaded:
		require.Failf(t, "the reload ended before SetState", "err: %v", err)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "SetState waits for the reload")
	}
	close(bundle.release)
	require.NoError(t, <-reloaded)
	require.Equal(t, policy.GrantRequired, eval(t, e, call("POST", "mailboxes", "mbx-1", "search")).Outcome)
}

// pausedFS is a bundle whose first read of elevate.rego waits for release.
type pausedFS struct {
	fstest.MapFS
	once            sync.Once
	opened, release chan struct{}
}

func (f *pausedFS) Open(name string) (fs.File, error) {
	f.pause(name)
	return f.MapFS.Open(name)
}

func (f *pausedFS) ReadFile(name string) ([]byte, error) {
	f.pause(name)
	return f.MapFS.ReadFile(name)
}

func (f *pausedFS) pause(name string) {
	if name == "elevate.rego" {
		f.once.Do(func() {
			close(f.opened)
			<-f.release
		})
	}
}

func TestEvalUndefinedDecision(t *testing.T) {
	e := newEngine(t, bundleOf(map[string]string{
		"policy.rego": "package elevate\n\ndecision := {\"outcome\": \"allow\", \"reason\": \"GET\"} if input.method == \"GET\"\n",
	}))
	d, err := e.Eval(context.Background(), call("GET", "mailboxes"), t0)
	require.NoError(t, err)
	require.Equal(t, policy.Decision{Outcome: policy.Allow, Reason: "GET"}, d)

	d, err = e.Eval(context.Background(), call("POST", "mailboxes"), t0)
	require.ErrorIs(t, err, policy.ErrUndefined)
	require.Equal(t, policy.Deny, d.Outcome)
}

func TestEvalBadDecision(t *testing.T) {
	tests := []struct {
		desc     string
		decision string
	}{
		{"not an object", `"allow"`},
		{"no outcome", `{"reason": "r"}`},
		{"unknown outcome", `{"outcome": "maybe", "reason": "r"}`},
		{"outcome of the wrong case", `{"outcome": "Allow", "reason": "r"}`},
		{"no reason", `{"outcome": "allow"}`},
		{"task not a string", `{"outcome": "allow", "reason": "r", "task": 1}`},
		{"grant not a string", `{"outcome": "allow", "reason": "r", "grant": true}`},
		{"gated not a boolean", `{"outcome": "allow", "reason": "r", "gated": "yes"}`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEngine(t, bundleOf(map[string]string{"p.rego": "package elevate\n\ndecision := " + tc.decision + "\n"}))
			d, err := e.Eval(context.Background(), call("GET"), t0)
			require.ErrorIs(t, err, policy.ErrBadDecision)
			require.Equal(t, policy.Deny, d.Outcome)
		})
	}
}

// TestEvalErrorsDeny: a fault that the load-time proof cannot reach (it
// tries representative calls, not every caller) still denies the call.
func TestEvalErrorsDeny(t *testing.T) {
	tests := []struct {
		desc   string
		module string
	}{
		{"conflicting values", "package elevate\n\ndecision := {\"outcome\": \"allow\", \"reason\": \"a\"}\n\n" +
			"decision := {\"outcome\": \"allow\", \"reason\": \"b\"} if input.subject.id == \"mallory\"\n"},
		{"builtin error in a deny rule", "package elevate\n\n" +
			"deny contains \"d\" if {\n\tinput.subject.id == \"mallory\"\n\tto_number(input.subject.id) > 0\n}\n\n" +
			"decision := {\"outcome\": \"allow\", \"reason\": \"r\"} if count(deny) == 0\n"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEngine(t, bundleOf(map[string]string{"p.rego": tc.module}))
			in := call("GET")
			in.Subject.ID = "mallory"
			d, err := e.Eval(context.Background(), in, t0)
			require.Error(t, err)
			require.NotErrorIs(t, err, policy.ErrUndefined)
			require.Equal(t, policy.Deny, d.Outcome)
		})
	}
}

func TestEvalRefusesZeroTime(t *testing.T) {
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	d, err := e.Eval(context.Background(), call("GET", "mailboxes"), time.Time{})
	require.ErrorIs(t, err, policy.ErrInvalidInput)
	require.Equal(t, policy.Deny, d.Outcome)
}

func TestEvalCancelledContext(t *testing.T) {
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := e.Eval(ctx, call("GET", "mailboxes"), t0)
	require.Error(t, err)
	require.Equal(t, policy.Deny, d.Outcome)
}

// TestInputReachesRegoAsItsJSON checks that the JSON names of Input are the
// document Rego sees.
func TestInputReachesRegoAsItsJSON(t *testing.T) {
	e := newEngine(t, bundleOf(map[string]string{
		"p.rego": "package elevate\n\ndecision := {\"outcome\": \"deny\", \"reason\": json.marshal(input)}\n",
	}))
	in := policy.Input{
		Method:   "DELETE",
		Upstream: "exchange",
		Host:     "exchange.elevate.test",
		Path:     []string{"journal-rules", "a/b"},
		Query:    map[string][]string{"force": {"true"}, "tag": {"x", "y"}},
		Subject:  policy.Subject{ID: "alice", Groups: []string{"helpdesk"}, MFA: true, Email: "alice@example.test"},
		Grants: []policy.Grant{{ID: "g1", RequestID: "r1", Scope: "role", Target: importExport,
			NotBefore: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour)}},
		Body: map[string]any{"jsonrpc": "2.0", "method": "x", "params": []any{json.Number("1.5"), "a", nil, true, map[string]any{}}},
	}
	want, err := json.Marshal(in)
	require.NoError(t, err)
	require.Contains(t, string(want), `"expires_at_ns":1750078800000000000`)

	d, err := e.Eval(context.Background(), in, t0)
	require.NoError(t, err)
	require.JSONEq(t, string(want), d.Reason)

	t.Run("empty fields are empty, not null", func(t *testing.T) {
		d, err := e.Eval(context.Background(), policy.Input{Method: "GET"}, t0)
		require.NoError(t, err)
		require.JSONEq(t, `{"method": "GET", "upstream": "", "host": "", "path": [], "query": {},
			"subject": {"id": "", "groups": [], "mfa": false}, "grants": []}`, d.Reason)
	})
}

func TestDataFilesMergeAtTheirDirectory(t *testing.T) {
	e := newEngine(t, bundleOf(map[string]string{
		"p.rego":            "package elevate\n\ndecision := {\"outcome\": \"deny\", \"reason\": json.marshal(data.org)}\n",
		"org/data.json":     `{"teams": {"a": 1}}`,
		"org/data.yaml":     "teams:\n  b: 2\n",
		"org/eu/data.yml":   "region: eu\n",
		"org/.hidden.rego":  "this is not Rego",
		"org/notes.md":      "ignored",
		"org/x_test.rego":   "this is not Rego either",
		".git/data.json":    `{"org": {"teams": {"a": 9}}}`,
		".manifest":         `{"roots": ["nowhere"]}`,
		"org/README.txt":    "ignored",
		"org/eu/other.toml": `ignored = true`,
	}))
	d, err := e.Eval(context.Background(), call("GET"), t0)
	require.NoError(t, err)
	require.JSONEq(t, `{"teams": {"a": 1, "b": 2}, "eu": {"region": "eu"}}`, d.Reason)

	t.Run("conflicting values", func(t *testing.T) {
		_, err := policy.New(context.Background(), policy.Config{Bundle: bundleOf(map[string]string{
			"p.rego":        "package elevate\n\ndecision := 1\n",
			"org/data.json": `{"teams": {"a": 1}}`,
			"org/data.yaml": "teams:\n  a: 2\n",
		})})
		require.ErrorIs(t, err, policy.ErrInvalidBundle)
		require.Contains(t, err.Error(), "data.org.teams.a")
	})
}

func TestCatalog(t *testing.T) {
	e := newEngine(t, defaultBundle())
	cat := e.Catalog()
	require.Equal(t, policy.TaskInfo{Upstream: "exchange", Read: true, Description: "List mailboxes or read one mailbox"},
		cat.Tasks[getMailbox])
	exchange := 0
	for _, info := range cat.Tasks {
		if info.Upstream == "exchange" {
			exchange++
		}
	}
	require.Equal(t, 5, exchange, "tasks of the demo upstream")

	tests := []struct {
		desc          string
		scope, target string
		want          []string
	}{
		{"a task", "task", searchMailbox, []string{searchMailbox}},
		{"a role", "role", importExport, []string{newMoveRequest, searchMailbox}},
		{"a role group, with the tasks of its roles", "rolegroup", orgManagement,
			[]string{newJournalRule, newMoveRequest, rmJournalRule, searchMailbox}},
		{"an unknown task", "task", `Exchange\Nope`, nil},
		{"a role name as a task", "task", importExport, nil},
		{"a role group name as a role", "role", orgManagement, nil},
		{"an unknown scope", "tenant", searchMailbox, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			require.Equal(t, tc.want, cat.TasksOf(tc.scope, tc.target))
			require.Equal(t, tc.want != nil, cat.Has(tc.scope, tc.target))
		})
	}

	t.Run("a copy", func(t *testing.T) {
		c := e.Catalog()
		c.Roles[importExport][0] = "changed"
		delete(c.Tasks, getMailbox)
		c.TasksOf("role", importExport)[0] = "changed too"
		require.Equal(t, cat, e.Catalog())
	})

	t.Run("a bundle without catalog", func(t *testing.T) {
		e := newEngine(t, bundleOf(map[string]string{"p.rego": "package elevate\n\ndecision := 1\n"}))
		require.False(t, e.Catalog().Has("task", searchMailbox))
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		desc    string
		cfg     policy.Config
		wantErr string
	}{
		{"defaults", policy.Config{Bundle: defaultBundle()}, ""},
		{"explicit queries", policy.Config{Bundle: defaultBundle(), Query: "data.x.decision", CatalogQuery: `data["my-policy"].catalog`}, ""},
		{"no bundle", policy.Config{}, "policy.bundle: required"},
		{"query not a reference", policy.Config{Bundle: defaultBundle(), Query: "1 + 1"}, "policy.query: "},
		{"query outside data", policy.Config{Bundle: defaultBundle(), Query: "input.decision"}, "policy.query: "},
		{"query of the data root", policy.Config{Bundle: defaultBundle(), Query: "data"}, "policy.query: "},
		{"query with a variable", policy.Config{Bundle: defaultBundle(), Query: "data.elevate[x]"}, "policy.query: "},
		{"catalog query outside data", policy.Config{Bundle: defaultBundle(), CatalogQuery: "input.x"}, "policy.catalog_query: "},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			_, err = policy.New(context.Background(), tc.cfg)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestCustomQueries(t *testing.T) {
	e, err := policy.New(context.Background(), policy.Config{
		Bundle: bundleOf(map[string]string{"p.rego": "package gate\n\nverdict := {\"outcome\": \"deny\", \"reason\": \"custom\"}\n\n" +
			"known := {\"tasks\": {\"T\": {\"upstream\": \"u\"}}, \"roles\": {\"R\": {\"T\"}}}\n"}),
		Query:        "data.gate.verdict",
		CatalogQuery: "data.gate.known",
	})
	require.NoError(t, err)
	require.Equal(t, "custom", eval(t, e, call("GET")).Reason)
	require.Equal(t, []string{"T"}, e.Catalog().TasksOf("role", "R"))
}

// TestConcurrentUse runs Eval while SetState and Reload change the engine;
// run with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, defaultBundle())
	require.NoError(t, e.SetState(ctx, gatedBy("task", searchMailbox)))
	search := call("POST", "mailboxes", "mbx-1", "search")

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				d, err := e.Eval(ctx, search, t0)
				if err != nil {
					errs <- err
					return
				}
				if d.Outcome == policy.Deny || d.Task != searchMailbox {
					errs <- &unexpected{d}
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			st := gatedBy("task", searchMailbox)
			st.Control.Enabled = i%2 == 0
			if err := e.SetState(ctx, st); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := range 3 {
			// A bundle new to the process each time, so that each reload
			// runs the proof and SetState overlaps it.
			fresh := bundleWith(t, map[string]string{"concurrent/data.json": fmt.Sprintf(`{"reload": %d}`, i)})
			if err := e.Reload(ctx, fresh); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// The last state set (control disabled) holds, whatever the reloads
	// overlapped.
	require.Equal(t, "task is not gated", eval(t, e, search).Reason)
}

type unexpected struct{ d policy.Decision }

func (u *unexpected) Error() string {
	return "unexpected decision " + string(u.d.Outcome) + ": " + u.d.Reason
}
