package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/shapes"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// A kubernetes upstream in process: the proxy listener's handler on the
// real gate of gateEnv (a grant store on an embedded etcd, the default
// Rego bundle, real tokens, an audit log), in front of a recording server
// standing in for the API server.

// kubeToken is elevate's own credential for the API server.
const kubeToken = "kube-sa-t0ken"

// kubeHit is one request the API server received.
type kubeHit struct {
	Method, URI string
	Header      http.Header
}

// kubeAPI stands in for the API server: it records every request and
// answers a list with a small body; a watch (?watch=true) writes its first
// event at once and one more for every value sent on events, flushing each,
// until events is closed or the call is cancelled.
type kubeAPI struct {
	srv    *httptest.Server
	events chan string
	// watchEnded is closed when a watch's handler returns.
	watchEnded chan struct{}

	mu   sync.Mutex
	hits []kubeHit
}

func newKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	k := &kubeAPI{events: make(chan string), watchEnded: make(chan struct{})}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.hits = append(k.hits, kubeHit{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone()})
		k.mu.Unlock()
		if up := r.Header.Get("Upgrade"); up != "" && strings.HasSuffix(r.URL.Path, "/exec") {
			echoUpgrade(w, up)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "true" {
			_, _ = io.WriteString(w, `{"kind":"Status","status":"Success"}`)
			return
		}
		defer close(k.watchEnded)
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, `{"type":"ADDED","object":{"metadata":{"name":"web-1"}}}`+"\n")
		if rc.Flush() != nil {
			return
		}
		for {
			select {
			case ev, ok := <-k.events:
				if !ok {
					return
				}
				_, _ = io.WriteString(w, ev+"\n")
				if rc.Flush() != nil {
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(k.srv.Close)
	return k
}

// echoUpgrade switches to protocol up and echoes every byte until the
// connection ends, as an exec stream whose command is cat.
func echoUpgrade(w http.ResponseWriter, up string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", up)
	if brw.Flush() != nil {
		return
	}
	_, _ = io.Copy(conn, brw)
}

func (k *kubeAPI) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.hits)
}

func (k *kubeAPI) since(n int) []kubeHit {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.hits[n:])
}

// kubeEnv is a proxy listener with one kubernetes upstream, kube, on the
// prefix /k8s/: it passes the groups oncall and cluster-operators (to which
// the token group ops is mapped) and prefixes subjects with "elevate:".
type kubeEnv struct {
	*gateEnv
	px   *proxy.Proxy
	base string // http://ADDR of the proxy listener
	api  *kubeAPI
	// logs reads the audit log (Record, outcome).
	logs *proxyEnv
}

func newKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	g := newGateEnv(t, nil)
	api := newKubeAPI(t)
	cred := filepath.Join(t.TempDir(), "kube.token")
	require.NoError(t, os.WriteFile(cred, []byte(kubeToken+"\n"), 0o600))
	ca, err := proxy.LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	px, err := proxy.New(proxy.Config{CA: &ca, Logger: slog.New(slog.DiscardHandler), Upstreams: []proxy.Upstream{{
		Name: "kube", URL: api.srv.URL, Prefix: "/k8s/", Type: proxy.TypeKubernetes,
		Credential: &proxy.Credential{Type: "bearer", ValueFile: cred},
		Kubernetes: proxy.KubernetesOptions{Groups: []string{"oncall", "cluster-operators"},
			GroupMap: map[string]string{"ops": "cluster-operators"}, UserPrefix: "elevate:"},
	}}}, g.gate)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(px)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv.Config.Protocols = &protocols
	srv.Config.MaxHeaderBytes = proxy.MaxHeaderBytes
	srv.Config.DisableGeneralOptionsHandler = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	e := &kubeEnv{gateEnv: g, px: px, base: srv.URL, api: api, logs: &proxyEnv{Env: &shapes.Env{AuditLog: g.logPath}}}
	// Access control, enabled by newGateEnv, reaches the engine through
	// the store's watch.
	call, prob := px.Resolve("POST", "http://elevate.test/k8s/api/v1/namespaces/prod/configmaps")
	require.Nil(t, prob)
	call.Token, call.DryRun = e.caller("ada"), true
	require.Eventually(t, func() bool {
		return g.gate.Check(context.Background(), call).Event == "denied"
	}, 10*time.Second, 5*time.Millisecond, "access control did not reach the engine")
	return e
}

// caller is sub's token, carrying groups.
func (e *kubeEnv) caller(sub string, groups ...string) string {
	e.t.Helper()
	tok, err := e.dev.Sign(identity.DevToken{Subject: sub, Groups: groups})
	require.NoError(e.t, err)
	return tok
}

// kubeAnswer is an answer of the proxy listener, and what the API server
// received for it.
type kubeAnswer struct {
	Status int
	Header http.Header
	Body   string
	Hits   []kubeHit
}

// do sends method target (a path on the proxy listener) with token and
// the extra headers ("Name: value", sent with the name as written).
func (e *kubeEnv) do(t *testing.T, method, target, token string, headers ...string) kubeAnswer {
	t.Helper()
	before := e.api.count()
	req, err := http.NewRequest(method, e.base+target, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		require.True(t, ok, h)
		req.Header[k] = append(req.Header[k], strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return kubeAnswer{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Hits: e.api.since(before)}
}

// requireStatus requires that a is a refusal sent as a Kubernetes Status
// with code status and reason, that nothing reached the API server, and
// that the message quotes the decision id of the answer's header.
func requireStatus(t *testing.T, a kubeAnswer, status int, reason string) shapes.Status {
	t.Helper()
	require.Equal(t, status, a.Status, a.Body)
	require.Empty(t, a.Hits, "a refusal forwards nothing")
	require.Equal(t, "application/json", a.Header.Get("Content-Type"))
	s, ok := shapes.ParseStatus(a.Body)
	require.True(t, ok, a.Body)
	require.Equal(t, "v1", s.APIVersion)
	require.Equal(t, "Failure", s.Status)
	require.Equal(t, status, s.Code)
	require.Equal(t, reason, s.Reason)
	id := a.Header.Get("Elevate-Decision-Id")
	require.NotEmpty(t, id, "every refusal carries its decision id")
	require.Contains(t, s.Message, "(elevate decision "+id+")")
	return s
}

// policy creates an approval policy (automatic approval) for task and
// waits until the gate asks sub for a grant for a call of it.
func (e *kubeEnv) policy(t *testing.T, task, sub, method, target string) grants.Policy {
	t.Helper()
	pol, err := e.store.CreatePolicy(context.Background(), grants.Policy{Scope: grants.ScopeTask, Target: task,
		Approval: grants.ApprovalAuto, CreatedBy: "ada"})
	require.NoError(t, err)
	call, prob := e.px.Resolve(method, "http://elevate.test"+target)
	require.Nil(t, prob)
	call.Token, call.DryRun = e.caller(sub), true
	require.Eventually(t, func() bool {
		return e.gate.Check(context.Background(), call).Event == "grant_required"
	}, 10*time.Second, 5*time.Millisecond, "the policy did not reach the engine")
	return pol
}

// grant has sub's request for task under pol, narrowed by c, approved,
// and waits until the view holds its grant.
func (e *kubeEnv) grant(t *testing.T, pol grants.Policy, sub, task string, c grants.Constraint) grants.Request {
	t.Helper()
	req, err := e.store.Submit(context.Background(), grants.NewRequest{Requester: grants.Actor{Subject: sub},
		Scope: grants.ScopeTask, Target: task, Reason: "incident 42", PolicyID: pol.ID, Constraint: c})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(e.store.LiveGrants(sub, time.Now()), func(g grants.Grant) bool { return g.RequestID == req.ID })
	}, 10*time.Second, 5*time.Millisecond, "the grant did not reach the view")
	return req
}

// TestKubeImpersonation: an allowed call reaches the API server with
// elevate's own credential and the caller impersonated: the subject after
// the user prefix, and only the caller's groups the upstream lets through
// (after the group map), never a system: group nor the caller's token.
func TestKubeImpersonation(t *testing.T) {
	e := newKubeEnv(t)
	tok := e.caller("alice", "ops", "oncall", "system:masters", "unlisted", "system:authenticated")
	a := e.do(t, "GET", "/k8s/api/v1/namespaces/prod/pods", tok, "Cookie: s=1")
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Len(t, a.Hits, 1)
	hit := a.Hits[0]
	require.Equal(t, "GET /api/v1/namespaces/prod/pods", hit.Method+" "+hit.URI)
	require.Equal(t, []string{"Bearer " + kubeToken}, hit.Header.Values("Authorization"), "elevate's credential, and only it")
	require.Equal(t, []string{"elevate:alice"}, hit.Header.Values("Impersonate-User"))
	require.Equal(t, []string{"cluster-operators", "oncall"}, hit.Header.Values("Impersonate-Group"))
	for k, vs := range hit.Header {
		for _, v := range vs {
			require.NotContains(t, v, tok, "the caller's token reached the API server in %s", k)
			require.NotContains(t, strings.ToLower(v), "system:", "a system: group reached the API server in %s", k)
			require.NotContains(t, v, "unlisted", "an unlisted group reached the API server in %s", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			require.Contains(t, []string{"Impersonate-User", "Impersonate-Group"}, k)
		}
	}
	require.Empty(t, hit.Header.Values("Cookie"))

	// A caller without any group the upstream passes is impersonated
	// without groups.
	a = e.do(t, "GET", "/k8s/api/v1/namespaces/prod/pods", e.caller("carl", "system:masters"))
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Len(t, a.Hits, 1)
	require.Equal(t, []string{"elevate:carl"}, a.Hits[0].Header.Values("Impersonate-User"))
	require.Empty(t, a.Hits[0].Header.Values("Impersonate-Group"))

	// The decision and the outcome record the call's attributes.
	id := a.Header.Get("Elevate-Decision-Id")
	require.NotEmpty(t, id)
	rec := e.logs.Record(t, id)
	require.Equal(t, "allowed", rec["event"])
	require.Equal(t, `Kubernetes\list pods`, rec["task"])
	require.Equal(t, map[string]any{"verb": "list", "resource": "pods", "namespace": "prod"}, rec["attributes"])
	out := e.logs.outcome(t, id)
	require.Equal(t, rec["attributes"], out["attributes"])
}

// TestKubeImpersonationRefused: a caller's own Impersonate-* header, in
// any spelling, is refused with a Status before anything is judged.
func TestKubeImpersonationRefused(t *testing.T) {
	e := newKubeEnv(t)
	tok := e.caller("alice", "oncall")
	for _, h := range []string{
		"Impersonate-User: admin", "Impersonate-Group: system:masters", "Impersonate-Uid: 0",
		"Impersonate-Extra-Scopes: all", "impersonate_user: admin", "IMPERSONATE-GROUP: system:masters",
	} {
		t.Run(h, func(t *testing.T) {
			a := e.do(t, "GET", "/k8s/api/v1/namespaces/prod/pods", tok, h)
			s := requireStatus(t, a, http.StatusBadRequest, "BadRequest")
			require.Contains(t, s.Message, "impersonates you")
			rec := e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))
			require.Equal(t, "bad_request", rec["event"])
			require.Equal(t, "kube", rec["upstream"])
		})
	}
}

// TestKubeGrantConstraint: a gated delete without a grant is refused with
// the command that asks for a grant in the call's namespace; a grant
// narrowed to namespace prod lets the call through in prod only.
func TestKubeGrantConstraint(t *testing.T) {
	e := newKubeEnv(t)
	const task = `Kubernetes\delete pods`
	tok := e.caller("alice", "oncall")
	pol := e.policy(t, task, "alice", "DELETE", "/k8s/api/v1/namespaces/prod/pods/web")

	a := e.do(t, "DELETE", "/k8s/api/v1/namespaces/prod/pods/web", tok)
	s := requireStatus(t, a, http.StatusForbidden, "Forbidden")
	const command = `elevate request new --task 'Kubernetes\delete pods' --namespace prod --reason '<why>'`
	require.Contains(t, s.Message, command)
	require.Contains(t, s.Message, "in namespace prod")
	require.NotNil(t, s.Details)
	require.Len(t, s.Details.Causes, 1)
	require.Equal(t, "elevate.request_command", s.Details.Causes[0].Field)
	require.Equal(t, command, s.Details.Causes[0].Message)
	rec := e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))
	require.Equal(t, "grant_required", rec["event"])
	require.Equal(t, task, rec["task"])
	require.Equal(t, map[string]any{"verb": "delete", "resource": "pods", "namespace": "prod", "name": "web"}, rec["attributes"])

	req := e.grant(t, pol, "alice", task, grants.Constraint{"namespace": "prod"})
	a = e.do(t, "DELETE", "/k8s/api/v1/namespaces/prod/pods/web", tok)
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Len(t, a.Hits, 1)
	require.Equal(t, "DELETE /api/v1/namespaces/prod/pods/web", a.Hits[0].Method+" "+a.Hits[0].URI)
	require.Equal(t, []string{"elevate:alice"}, a.Hits[0].Header.Values("Impersonate-User"))
	rec = e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))
	require.Equal(t, "allowed", rec["event"])
	require.Equal(t, req.ID, rec["request_id"])

	for _, target := range []string{
		"/k8s/api/v1/namespaces/staging/pods/web",
		"/k8s/api/v1/namespaces/prod-2/pods/web",
	} {
		a = e.do(t, "DELETE", target, tok)
		s = requireStatus(t, a, http.StatusForbidden, "Forbidden")
		ns := strings.Split(target, "/")[5]
		require.Contains(t, s.Message, `elevate request new --task 'Kubernetes\delete pods' --namespace `+ns+` --reason`)
	}
	// The grant is alice's only.
	requireStatus(t, e.do(t, "DELETE", "/k8s/api/v1/namespaces/prod/pods/web", e.caller("bob", "oncall")), http.StatusForbidden, "Forbidden")
}

// TestKubeChangeWithoutPolicy: while access control is enabled, a
// Kubernetes change that no approval policy covers is denied, naming the
// command that adds one; reads pass.
func TestKubeChangeWithoutPolicy(t *testing.T) {
	e := newKubeEnv(t)
	tok := e.caller("alice", "oncall")
	for _, tc := range []struct{ method, target, task string }{
		{"POST", "/k8s/api/v1/namespaces/prod/configmaps", `Kubernetes\create configmaps`},
		{"DELETE", "/k8s/apis/apps/v1/namespaces/prod/deployments/web", `Kubernetes\delete deployments`},
		{"DELETE", "/k8s/api/v1/namespaces/prod/pods", `Kubernetes\deletecollection pods`},
		{"GET", "/k8s/api/v1/namespaces/prod/secrets/db", `Kubernetes\get secrets`},
	} {
		t.Run(tc.task, func(t *testing.T) {
			a := e.do(t, tc.method, tc.target, tok)
			s := requireStatus(t, a, http.StatusForbidden, "Forbidden")
			require.Contains(t, s.Message, "elevate policy create --task '"+tc.task+"'")
			rec := e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))
			require.Equal(t, "denied", rec["event"])
			require.Equal(t, tc.task, rec["task"])
		})
	}
	a := e.do(t, "GET", "/k8s/apis/apps/v1/namespaces/prod/deployments/web", tok)
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Len(t, a.Hits, 1)
}

// TestKubeUpgrades: only exec, attach and port-forward may switch
// protocols, and only to WebSocket or SPDY/3.1; every other upgrade is
// refused with a Status and forwards nothing. An allowed kind of upgrade
// is judged as its call's own task before anything is forwarded.
func TestKubeUpgrades(t *testing.T) {
	e := newKubeEnv(t)
	tok := e.caller("alice", "oncall")
	for _, tc := range []struct {
		desc, method, target, upgrade string
	}{
		{"websocket on a log", "GET", "/k8s/api/v1/namespaces/prod/pods/web/log?follow=true", "websocket"},
		{"websocket on a list", "GET", "/k8s/api/v1/namespaces/prod/pods", "websocket"},
		{"websocket on a get", "GET", "/k8s/api/v1/namespaces/prod/pods/web", "websocket"},
		{"websocket on discovery", "GET", "/k8s/version", "websocket"},
		{"SPDY on a log", "GET", "/k8s/api/v1/namespaces/prod/pods/web/log?follow=true", "SPDY/3.1"},
		{"SPDY on a get", "GET", "/k8s/api/v1/namespaces/prod/pods/web", "SPDY/3.1"},
		{"h2c on exec", "GET", "/k8s/api/v1/namespaces/prod/pods/web/exec?command=sh", "h2c"},
		{"SPDY/2 on exec", "POST", "/k8s/api/v1/namespaces/prod/pods/web/exec?command=sh", "SPDY/2"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a := e.do(t, tc.method, tc.target, tok, "Connection: Upgrade", "Upgrade: "+tc.upgrade)
			s := requireStatus(t, a, http.StatusBadRequest, "BadRequest")
			require.Regexp(t, `(?i)switch|upgrade`, s.Message)
			require.Equal(t, "bad_request", e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))["event"])
		})
	}
	// An exec, attach or port-forward stream is judged as its own task:
	// a change, refused without a policy, not as a bad request.
	for _, tc := range []struct {
		desc, method, target, task string
		headers                    []string
	}{
		{"WebSocket exec", "GET", "/k8s/api/v1/namespaces/prod/pods/web/exec?command=sh", `Kubernetes\exec pods`,
			[]string{"Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}},
		{"SPDY exec", "POST", "/k8s/api/v1/namespaces/prod/pods/web/exec?command=sh&stdin=true", `Kubernetes\exec pods`,
			[]string{"Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v4.channel.k8s.io"}},
		{"SPDY port-forward", "POST", "/k8s/api/v1/namespaces/prod/pods/web/portforward?ports=80", `Kubernetes\portforward pods`,
			[]string{"Upgrade: SPDY/3.1"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a := e.do(t, tc.method, tc.target, tok, append([]string{"Connection: Upgrade"}, tc.headers...)...)
			s := requireStatus(t, a, http.StatusForbidden, "Forbidden")
			require.Contains(t, s.Message, "elevate policy create --task '"+tc.task+"'")
			rec := e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))
			require.Equal(t, "denied", rec["event"])
			require.Equal(t, tc.task, rec["task"])
		})
	}
}

// TestKubeWatchCutOnRevoke: a watch allowed by a grant is relayed event
// by event as the API server flushes them, and ends when the grant is
// revoked; its outcome record says the stream was cut.
func TestKubeWatchCutOnRevoke(t *testing.T) {
	e := newKubeEnv(t)
	const task = `Kubernetes\watch pods`
	const target = "/k8s/api/v1/namespaces/prod/pods?watch=true"
	pol := e.policy(t, task, "alice", "GET", target)
	req := e.grant(t, pol, "alice", task, grants.Constraint{"namespace": "prod"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, "GET", e.base+target, nil)
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+e.caller("alice", "oncall"))
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := resp.Header.Get("Elevate-Decision-Id")
	require.NotEmpty(t, id)

	lines := make(chan string, 16)
	readErr := make(chan error, 1)
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				readErr <- err
				return
			}
			lines <- strings.TrimSpace(line)
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case err := <-readErr:
			t.Fatalf("the watch ended early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no event relayed")
		}
		return ""
	}

	// Each event arrives while the API server still holds the watch open.
	require.Contains(t, next(), `"ADDED"`)
	select {
	case <-e.api.watchEnded:
		t.Fatal("the API server ended the watch before the first event was relayed")
	default:
	}
	select {
	case e.api.events <- `{"type":"MODIFIED","object":{"metadata":{"name":"web-1"}}}`:
	case <-time.After(10 * time.Second):
		t.Fatal("the API server's watch is gone")
	}
	require.Contains(t, next(), `"MODIFIED"`)

	_, err = e.store.Revoke(context.Background(), req.ID, grants.Actor{Subject: "alice"}, "done")
	require.NoError(t, err)
	select {
	case l := <-lines:
		t.Fatalf("an event after the revocation: %s", l)
	case <-readErr: // the stream ended
	case <-time.After(10 * time.Second):
		t.Fatal("the watch outlived its grant")
	}
	select {
	case <-e.api.watchEnded: // the call to the API server was cancelled too
	case <-time.After(10 * time.Second):
		t.Fatal("the API server's watch was not cancelled")
	}

	rec := e.logs.Record(t, id)
	require.Equal(t, "allowed", rec["event"])
	require.Equal(t, map[string]any{"verb": "watch", "resource": "pods", "namespace": "prod", "watch": "true"}, rec["attributes"])
	out := e.logs.outcome(t, id)
	require.Equal(t, "stream cut: the grant was revoked", out["reason"])
	require.Equal(t, req.ID, out["request_id"])
}

// TestKubeCheckAgrees: POST /v1/check's judging (Proxy.Resolve, then a
// dry run of the gate) gives the proxy listener's verdict on kubernetes
// URLs: allowed or refused, the same status and task.
func TestKubeCheckAgrees(t *testing.T) {
	e := newKubeEnv(t)
	const task = `Kubernetes\delete pods`
	pol := e.policy(t, task, "alice", "DELETE", "/k8s/api/v1/namespaces/prod/pods/web")
	e.grant(t, pol, "alice", task, grants.Constraint{"namespace": "prod"})
	tok := e.caller("alice", "oncall")
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/k8s/api/v1/namespaces/prod/pods", 200},
		{"DELETE", "/k8s/api/v1/namespaces/prod/pods/web", 200},
		{"DELETE", "/k8s/api/v1/namespaces/staging/pods/web", 403},
		{"DELETE", "/k8s/api/v1/namespaces/prod/pods", 403},
		{"POST", "/k8s/api/v1/namespaces/prod/configmaps", 403},
		{"GET", "/k8s/api/v1/namespaces/prod/Pods", 400},
		{"GET", "/k8s/api/v1/namespaces/prod/pods?watch=yes", 400},
		{"DELETE", "/k8s/api/v1/namespaces/prod/pods/a/../web", 400},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			a := e.do(t, tc.method, tc.target, tok)
			require.Equal(t, tc.status, a.Status, a.Body)
			task, _ := e.logs.Record(t, a.Header.Get("Elevate-Decision-Id"))["task"].(string)

			call, prob := e.px.Resolve(tc.method, "http://elevate.test"+tc.target)
			if prob != nil {
				require.Equal(t, a.Status, prob.Status, prob.Detail)
				require.Empty(t, task)
				return
			}
			call.Token, call.DryRun = tok, true
			v := e.gate.Check(context.Background(), call)
			require.Equal(t, a.Status < 400, v.Allowed)
			if v.Problem != nil {
				require.Equal(t, a.Status, v.Problem.Status)
			}
			require.Equal(t, task, v.Decision.Task)
		})
	}
}
