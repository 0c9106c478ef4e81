package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

const wrkOutput = `Running 2s test @ http://127.0.0.1:41234/bench/call
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    2.10ms  45.00ms   91.00%
    Req/Sec     8.10k     1.20k   10.00k    70.00%
  Latency Distribution
     50%  612.00us
     75%    1.01ms
     90%    3.37ms
     99%    1.20s
  32345 requests in 2.00s, 4.10MB read
Requests/sec:  16172.50
Transfer/sec:      2.05MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		desc    string
		out     string
		want    wrkResult
		wantErr bool
	}{
		{desc: "all 2xx", out: wrkOutput, want: wrkResult{RPS: 16172.50, Requests: 32345,
			P50: 612 * time.Microsecond, P75: 1010 * time.Microsecond, P90: 3370 * time.Microsecond, P99: 1200 * time.Millisecond}},
		{desc: "refusals and socket errors counted",
			out: strings.Replace(wrkOutput, "Requests/sec:", "  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 17\nRequests/sec:", 1),
			want: wrkResult{RPS: 16172.50, Requests: 32345, Non2xx: 17, SocketErrors: 6,
				P50: 612 * time.Microsecond, P75: 1010 * time.Microsecond, P90: 3370 * time.Microsecond, P99: 1200 * time.Millisecond}},
		{desc: "no latency distribution", out: strings.Split(wrkOutput, "  Latency Distribution")[0] + "Requests/sec: 1.0\n", wantErr: true},
		{desc: "not wrk at all", out: "connection refused", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want.RPS, got.RPS, 0.001)
			got.RPS = tc.want.RPS
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/elevate-pam/elevate/audit
BenchmarkWrite-2   	   20000	     49841 ns/op	  20064 records/s	    5596 B/op	      12 allocs/op
PASS
pkg: github.com/elevate-pam/elevate/proxy
BenchmarkCheck/allowed_serial-2         	     148	   1580058 ns/op	   37857 B/op	     553 allocs/op
BenchmarkCheck/no_procs         	     148	   12.5 ns/op
ok  	github.com/elevate-pam/elevate/proxy	3.352s
`
	got := parseGoBench(out)
	require.Len(t, got, 3)
	require.Equal(t, "audit", got[0].Pkg)
	require.Equal(t, "BenchmarkWrite", got[0].Name)
	require.Equal(t, []string{"ns/op", "records/s", "B/op", "allocs/op"}, got[0].Units)
	require.Equal(t, 20064.0, got[0].Metrics["records/s"])
	require.Equal(t, "proxy", got[1].Pkg)
	require.Equal(t, "BenchmarkCheck/allowed_serial", got[1].Name)
	require.Equal(t, int64(148), got[1].N)
	require.Equal(t, 553.0, got[1].Metrics["allocs/op"])
	require.Equal(t, "BenchmarkCheck/no_procs", got[2].Name)
	require.Equal(t, 12.5, got[2].Metrics["ns/op"])

	rep := &report{GoBench: got}
	v, ok := rep.auditRecordsPerSec()
	require.True(t, ok)
	require.Equal(t, 20064.0, v)
}

// TestReachRows: the route-count and judged-body comparisons come from the
// Go benchmarks' lines, and only when both sides ran.
func TestReachRows(t *testing.T) {
	out := `pkg: github.com/elevate-pam/elevate/policy
BenchmarkRoutes/10-2     	    3000	     95756 ns/op	   30082 B/op	     618 allocs/op
BenchmarkRoutes/5000-2   	    3000	     90625 ns/op	   29982 B/op	     618 allocs/op
pkg: github.com/elevate-pam/elevate/proxy
BenchmarkProxy/serial-2      	    2000	    410583 ns/op	         1.000 fsyncs/op	   43060 B/op	     349 allocs/op
BenchmarkProxyJudgedBody/serial-2         	    2000	    422404 ns/op	         1.000 fsyncs/op	   46686 B/op	     396 allocs/op
`
	rep := &report{GoBench: parseGoBench(out)}
	rows := rep.reachRows()
	require.Len(t, rows, 2, "the parallel pair did not run")
	require.Equal(t, 95756.0, rows[0].base)
	require.Equal(t, 90625.0, rows[0].other)
	require.Equal(t, 422404.0, rows[1].other)
	md := rep.markdown()
	require.Contains(t, md, "## Routes and judged bodies")
	require.Contains(t, md, "| decision, 10 → 5,000 routes | 95,756 ns | 90,625 ns | 0.95× |")
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_next_gc_bytes Number of heap bytes when next garbage collection will take place.
# TYPE go_memstats_next_gc_bytes gauge
go_memstats_next_gc_bytes 1.2e+07
elevate_grants_live{otel_scope_name="github.com/elevate-pam/elevate"} 100010
elevate_decisions_total{outcome="allowed"} 5
elevate_decisions_total{outcome="denied"} 2
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	require.NoError(t, err)
	require.Equal(t, 1.2e7, m["go_memstats_next_gc_bytes"])
	require.Equal(t, 100010.0, m["elevate_grants_live"])
	require.Equal(t, 7.0, m["elevate_decisions_total"])
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 0, 200)
	for i := 200; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		desc string
		p    float64
		want time.Duration
	}{
		{"median", 50, 100 * time.Millisecond},
		{"p99", 99, 198 * time.Millisecond},
		{"max", 100, 200 * time.Millisecond},
		{"min rank", 0, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			require.Equal(t, tc.want, percentile(ds, tc.p))
		})
	}
	require.Zero(t, percentile(nil, 50))
	require.Equal(t, 200*time.Millisecond, ds[0], "the input is not reordered")
}

func TestFormat(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{fmtDur(612 * time.Microsecond), "612 µs"},
		{fmtDur(38 * time.Microsecond), "38.0 µs"},
		{fmtDur(1260 * time.Microsecond), "1.26 ms"},
		{fmtDur(-1220 * time.Microsecond), "−1.22 ms"},
		{fmtDur(2 * time.Second), "2.00 s"},
		{fmtRPS(43123), "43.1k"},
		{fmtRPS(564), "564"},
		{thousands(100010), "100,010"},
		{thousands(999), "999"},
		{fmtBytes(5 << 20), "5.0 MiB"},
		{fmtNum(1580058), "1,580,058"},
		{fmtNum(12.5), "12.5"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.got)
	}
}

// TestBenchCatalog loads the bundle the harness gives elevate (the default
// bundle plus bench/policy/bench.rego) with elevate's policy engine.
func TestBenchCatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, writeBundle(dir, filepath.Join("..", "policy", "bench.rego")))
	engine, err := policy.New(ctx, policy.Config{Bundle: os.DirFS(dir)})
	require.NoError(t, err)
	require.NoError(t, engine.SetState(ctx, policy.State{
		Control: policy.Control{Enabled: true, DefaultApprovers: approverGroup},
		Policies: []policy.ApprovalPolicy{
			{ID: "p-hot", Scope: "task", Target: hotTask, Approval: "manual"},
			{ID: "p-500", Scope: "task", Target: `Bench\Task-0500`, Approval: "auto"},
		},
	}))
	now := time.Now()
	grant := policy.Grant{ID: "g-1", RequestID: "r-1", Scope: "task", Target: hotTask, NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
	call := func(method string, grants []policy.Grant, path ...string) policy.Input {
		return policy.Input{Method: method, Upstream: upstreamName, Host: "127.0.0.1", Path: path, Query: url.Values{},
			Subject: policy.Subject{ID: "alice"}, Grants: grants}
	}
	tests := []struct {
		desc    string
		in      policy.Input
		outcome policy.Outcome
		task    string
	}{
		{"hot call with a grant", call("POST", []policy.Grant{grant}, "call"), policy.Allow, hotTask},
		{"hot call without a grant", call("POST", nil, "call"), policy.GrantRequired, hotTask},
		{"gated fill task", call("POST", nil, "tasks", "0500"), policy.GrantRequired, `Bench\Task-0500`},
		{"ungated fill task", call("POST", nil, "tasks", "0999"), policy.Allow, `Bench\Task-0999`},
		{"beyond the fill tasks", call("POST", nil, "tasks", "1000"), policy.Deny, ""},
		{"other method", call("GET", []policy.Grant{grant}, "call"), policy.Deny, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := engine.Eval(ctx, tc.in, now)
			require.NoError(t, err)
			require.Equal(t, tc.outcome, d.Outcome, d.Reason)
			require.Equal(t, tc.task, d.Task)
		})
	}
}

// TestCompositePolicy runs bench/opa/authz.rego as OPA's server would: the
// composite must verify the token and find the grant, like elevate.
func TestCompositePolicy(t *testing.T) {
	ctx := context.Background()
	iss, err := newIssuer(t.TempDir())
	require.NoError(t, err)
	other, err := newIssuer(t.TempDir())
	require.NoError(t, err)
	now := time.Now()
	data := map[string]any{"bench": map[string]any{
		"public_key": string(iss.pubPEM), "issuer": issuerName, "audience": audience,
		"grants": map[string]any{
			"alice": []any{map[string]any{"task": hotTask, "not_before_ns": now.Add(-time.Minute).UnixNano(), "expires_at_ns": now.Add(time.Hour).UnixNano()}},
			"carol": []any{map[string]any{"task": hotTask, "not_before_ns": now.Add(-time.Hour).UnixNano(), "expires_at_ns": now.Add(-time.Minute).UnixNano()}},
		},
	}}
	b, err := json.Marshal(data)
	require.NoError(t, err)
	var store map[string]any
	require.NoError(t, json.Unmarshal(b, &store))
	src, err := os.ReadFile(filepath.Join("..", "opa", "authz.rego"))
	require.NoError(t, err)
	query, err := rego.New(
		rego.Query("data.bench.authz.allow"),
		rego.Module("authz.rego", string(src)),
		rego.Store(inmem.NewFromObject(store)),
	).PrepareForEval(ctx)
	require.NoError(t, err)

	tok := func(is *issuer, sub string) string {
		s, err := is.token(sub, nil, time.Hour)
		require.NoError(t, err)
		return s
	}
	tests := []struct {
		desc          string
		method, path  string
		authorization string
		want          bool
	}{
		{"grant holder", "POST", "/call", "Bearer " + tok(iss, "alice"), true},
		{"no grant", "POST", "/call", "Bearer " + tok(iss, "bob"), false},
		{"grant ended", "POST", "/call", "Bearer " + tok(iss, "carol"), false},
		{"token of another key", "POST", "/call", "Bearer " + tok(other, "alice"), false},
		{"no token", "POST", "/call", "", false},
		{"other call", "GET", "/call", "Bearer " + tok(iss, "alice"), false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rs, err := query.Eval(ctx, rego.EvalInput(map[string]any{"method": tc.method, "path": tc.path, "authorization": tc.authorization}))
			require.NoError(t, err)
			require.Len(t, rs, 1)
			require.Equal(t, tc.want, rs[0].Expressions[0].Value)
		})
	}
}

func TestServers(t *testing.T) {
	up := httptest.NewServer(upstreamHandler())
	defer up.Close()
	u, err := url.Parse(up.URL)
	require.NoError(t, err)
	rp := httptest.NewServer(revproxyHandler(u))
	defer rp.Close()
	sink := httptest.NewServer(&otlpSink{})
	defer sink.Close()

	hc := &http.Client{Timeout: 5 * time.Second}
	for _, target := range []string{up.URL, rp.URL} {
		status, err := post(context.Background(), hc, target+"/call", "t")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	resp, err := hc.Post(sink.URL+"/v1/traces", "application/x-protobuf", strings.NewReader("12345"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = hc.Get(sink.URL + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st sinkStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.Equal(t, sinkStats{TraceRequests: 1, TraceBytes: 5}, st)
}
