//go:build e2e

package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// jaegerVersion is the Jaeger release test/e2e/jaeger.sh builds and caches.
const jaegerVersion = "v1.76.0"

// errPortTaken marks a start that lost one of its ports to another process.
var errPortTaken = errors.New("a port was taken before Jaeger could bind it")

// jaegerBinary finds the Jaeger binary: $ELEVATE_JAEGER, else the path
// test/e2e/jaeger.sh builds it to. A missing binary skips the test, or
// fails it under CI.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ELEVATE_JAEGER"); p != "" {
		st, err := os.Stat(p)
		require.NoError(t, err, "ELEVATE_JAEGER")
		require.False(t, st.IsDir(), "ELEVATE_JAEGER names a directory: %s", p)
		return p
	}
	cache := cacheDir(t)
	p := filepath.Join(cache, "jaeger-"+jaegerVersion)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Jaeger is not built at %s; test/e2e/jaeger.sh builds it", p)
	}
	t.Skipf("Jaeger is not built at %s; run test/e2e/jaeger.sh", p)
	return ""
}

// jaeger is a private Jaeger with in-memory storage, run with
// deploy/jaeger/config.yaml on free loopback ports.
type jaeger struct {
	otlpHTTP string // OTLP/HTTP receiver, host:port
	query    string // query API base URL
	d        *background
}

// startJaeger starts Jaeger and waits until both its query API and its
// OTLP/HTTP receiver answer. It is stopped at cleanup, and its output is
// logged when the test failed.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	cfg, err := filepath.Abs(filepath.Join("..", "deploy", "jaeger", "config.yaml"))
	require.NoError(t, err)
	for attempt := 1; ; attempt++ {
		j, err := tryJaeger(t, bin, cfg)
		if err == nil {
			return j
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

func tryJaeger(t *testing.T, bin, cfg string) (*jaeger, error) {
	t.Helper()
	ports := freeLoopbackPorts(t, 5)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	j := &jaeger{otlpHTTP: addr(0), query: "http://" + addr(2)}
	env := programEnv(
		"JAEGER_OTLP_HTTP_ENDPOINT="+addr(0),
		"JAEGER_OTLP_GRPC_ENDPOINT="+addr(1),
		"JAEGER_QUERY_HTTP_ENDPOINT="+addr(2),
		"JAEGER_QUERY_GRPC_ENDPOINT="+addr(3),
		"JAEGER_METRICS_HOST=127.0.0.1",
		"JAEGER_METRICS_PORT="+strconv.Itoa(ports[4]),
	)
	j.d = startBackground(t, env, t.TempDir(), "jaeger.log", bin, "--config", cfg)

	client := &http.Client{Timeout: 5 * time.Second}
	ready := func() bool {
		resp, err := client.Get(j.query + "/api/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		// Receivers start after the extensions: an empty export must be
		// accepted too.
		resp, err = client.Post("http://"+j.otlpHTTP+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		if !j.d.running() {
			out := j.d.output()
			if strings.Contains(out, "address already in use") {
				return nil, fmt.Errorf("%w:\n%s", errPortTaken, out)
			}
			return nil, fmt.Errorf("jaeger exited before it was ready:\n%s", out)
		}
		if time.Now().After(deadline) {
			j.d.kill()
			return nil, fmt.Errorf("jaeger not ready after 60s:\n%s", j.d.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(j.d.kill)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("jaeger output:\n%s", j.d.output())
		}
	})
	return j, nil
}

// jaegerTrace is one trace as Jaeger's query API returns it.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// jaegerSpan is one span of a jaegerTrace.
type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// tag is the value of the span's tag key as text, "" when absent.
func (s jaegerSpan) tag(key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

// childOf reports whether the span's parent is the span with id parent.
func (s jaegerSpan) childOf(parent string) bool {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.SpanID == parent {
			return true
		}
	}
	return false
}

// gateSpans are the steps of the decision pipeline, each a child span of
// the proxied call's server span.
var gateSpans = []string{"elevate.identity", "elevate.grants", "elevate.policy", "elevate.audit"}

// traces runs one trace search for service elevate and returns the
// traces found and the raw JSON.
func (j *jaeger) traces(t *testing.T, since time.Time, tags map[string]string) ([]jaegerTrace, string) {
	t.Helper()
	q := url.Values{
		"service": {"elevate"},
		"start":   {strconv.FormatInt(since.UnixMicro(), 10)},
		"limit":   {"1000"},
	}
	if len(tags) > 0 {
		b, err := json.Marshal(tags)
		require.NoError(t, err)
		q.Set("tags", string(b))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(j.query + "/api/traces?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "jaeger trace search: %s", body)
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &out), "jaeger trace search: %s", body)
	return out.Data, string(body)
}

// findCall polls Jaeger until a trace holds a server span with the tag
// key=value and all the gate's child spans under it, and returns that
// trace, the server span and the raw JSON of the search.
func (j *jaeger) findCall(t *testing.T, since time.Time, key, value string) (jaegerTrace, jaegerSpan, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		found, raw := j.traces(t, since, map[string]string{key: value})
		for _, tr := range found {
			for _, sp := range tr.Spans {
				if sp.tag(key) != value || sp.tag("span.kind") != "server" {
					continue
				}
				children := map[string]bool{}
				for _, c := range tr.Spans {
					if c.childOf(sp.SpanID) {
						children[c.OperationName] = true
					}
				}
				complete := true
				for _, name := range gateSpans {
					complete = complete && children[name]
				}
				if complete {
					return tr, sp, raw
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete trace with %s=%s in Jaeger after 30s; last answer:\n%s", key, value, raw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// spanNames lists a trace's span names, sorted, for the log.
func spanNames(tr jaegerTrace) []string {
	names := make([]string, 0, len(tr.Spans))
	for _, sp := range tr.Spans {
		names = append(names, sp.OperationName)
	}
	sort.Strings(names)
	return names
}

// TestE2EJaeger sends elevate's traces to a real Jaeger over OTLP/HTTP and
// finds a gated call by its request id, and a refused call by its
// decision id, through Jaeger's query API. No bearer token reaches Jaeger.
func TestE2EJaeger(t *testing.T) {
	j := startJaeger(t)
	since := time.Now().Add(-time.Minute)

	// The child inherits the environment: only the endpoint of the contract
	// decides where the traces go.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.otlpHTTP)
	s := startDev(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("elevate stderr:\n%s", s.stderr.String())
		}
	})

	move := "http://" + s.proxyAddr + "/exchange/mailboxes/alice/move-requests"
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")

	// Refused without a grant.
	var refusal map[string]any
	require.Eventually(t, func() bool {
		rep := do(t, "POST", move, bob, "")
		if rep.status != http.StatusForbidden {
			return false
		}
		refusal = rep.json(t)
		return true
	}, 5*time.Second, 20*time.Millisecond)
	decisionID, _ := refusal["decision_id"].(string)
	require.NotEmpty(t, decisionID)

	// Allowed through an approved grant.
	id := s.request(bob, "--task", moveTask, "--reason", "move alice to DB02", "--duration", "10m")
	s.ok(admin, "request", "approve", id)
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusCreated },
		5*time.Second, 20*time.Millisecond)

	t.Run("gated call found by request id", func(t *testing.T) {
		tr, sp, raw := j.findCall(t, since, "elevate.request_id", id)
		t.Logf("trace %s: %s", tr.TraceID, strings.Join(spanNames(tr), ", "))
		require.Equal(t, "elevate", tr.Processes[sp.ProcessID].ServiceName)
		require.NotEmpty(t, sp.tag("elevate.grant_id"))
		require.Equal(t, "allowed", sp.tag("elevate.decision"))
		require.Equal(t, "bob", sp.tag("elevate.subject"))
		require.Equal(t, moveTask, sp.tag("elevate.task"))
		require.NotEmpty(t, sp.tag("elevate.decision_id"))
		requireNoToken(t, raw, bob, admin)
	})

	t.Run("refused call found by decision id", func(t *testing.T) {
		tr, sp, raw := j.findCall(t, since, "elevate.decision_id", decisionID)
		t.Logf("trace %s: %s", tr.TraceID, strings.Join(spanNames(tr), ", "))
		require.Equal(t, "grant_required", sp.tag("elevate.decision"))
		require.Equal(t, "bob", sp.tag("elevate.subject"))
		require.Empty(t, sp.tag("elevate.request_id"))
		requireNoToken(t, raw, bob, admin)
	})

	t.Run("no token in any trace", func(t *testing.T) {
		all, raw := j.traces(t, since, nil)
		require.NotEmpty(t, all)
		requireNoToken(t, raw, bob, admin)
	})
}

// requireNoToken fails when a token, or its signature alone, occurs in
// text.
func requireNoToken(t *testing.T, text string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		require.NotEmpty(t, tok)
		require.NotContains(t, text, tok, "a bearer token reached Jaeger")
		if i := strings.LastIndex(tok, "."); i >= 0 && len(tok)-i > 16 {
			require.NotContains(t, text, tok[i+1:], "a token signature reached Jaeger")
		}
	}
}
