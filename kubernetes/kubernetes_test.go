package kubernetes

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// split gives the decoded segments of a path as the proxy does: "/" is
// none, a trailing "/" an empty last segment.
func split(path string) []string {
	if path == "/" {
		return []string{}
	}
	return strings.Split(strings.TrimPrefix(path, "/"), "/")
}

type want struct {
	a    Attributes // Path is filled in from the call
	task string
	read bool
}

// TestParse reads calls as kube-apiserver's request info does, then names
// their task and tells reads.
func TestParse(t *testing.T) {
	core := func(verb, ns, resource, name, sub string) Attributes {
		return Attributes{Verb: verb, APIVersion: "v1", Namespace: ns, Resource: resource, Name: name, Subresource: sub}
	}
	group := func(verb, g, v, ns, resource, name, sub string) Attributes {
		return Attributes{Verb: verb, APIGroup: g, APIVersion: v, Namespace: ns, Resource: resource, Name: name, Subresource: sub}
	}
	with := func(a Attributes, f func(*Attributes)) Attributes { f(&a); return a }
	nonResource := func(verb string) Attributes { return Attributes{NonResource: true, Verb: verb} }

	cases := []struct {
		desc   string
		method string
		path   string
		segs   []string // instead of path, for segments holding "/"
		query  string
		want   want
	}{
		// core group, namespaced
		{"list pods in a namespace", "GET", "/api/v1/namespaces/prod/pods", nil, "", want{core("list", "prod", "pods", "", ""), `Kubernetes\list pods`, true}},
		{"get a pod", "GET", "/api/v1/namespaces/prod/pods/web-1", nil, "", want{core("get", "prod", "pods", "web-1", ""), `Kubernetes\get pods`, true}},
		{"HEAD is get", "HEAD", "/api/v1/namespaces/prod/pods/web-1", nil, "", want{core("get", "prod", "pods", "web-1", ""), `Kubernetes\get pods`, true}},
		{"HEAD without a name is list", "HEAD", "/api/v1/namespaces/prod/pods", nil, "", want{core("list", "prod", "pods", "", ""), `Kubernetes\list pods`, true}},
		{"create a pod", "POST", "/api/v1/namespaces/prod/pods", nil, "", want{core("create", "prod", "pods", "", ""), `Kubernetes\create pods`, false}},
		{"update a pod", "PUT", "/api/v1/namespaces/prod/pods/web-1", nil, "", want{core("update", "prod", "pods", "web-1", ""), `Kubernetes\update pods`, false}},
		{"patch a pod", "PATCH", "/api/v1/namespaces/prod/pods/web-1", nil, "", want{core("patch", "prod", "pods", "web-1", ""), `Kubernetes\patch pods`, false}},
		{"delete a pod", "DELETE", "/api/v1/namespaces/prod/pods/web-1", nil, "", want{core("delete", "prod", "pods", "web-1", ""), `Kubernetes\delete pods`, false}},
		{"delete without a name is deletecollection", "DELETE", "/api/v1/namespaces/prod/pods", nil, "labelSelector=app%3Dweb", want{with(core("deletecollection", "prod", "pods", "", ""), func(a *Attributes) { a.LabelSelector = "app=web" }), `Kubernetes\deletecollection pods`, false}},
		{"get a secret is not a read", "GET", "/api/v1/namespaces/prod/secrets/db", nil, "", want{core("get", "prod", "secrets", "db", ""), `Kubernetes\get secrets`, false}},
		{"list secrets is not a read", "GET", "/api/v1/namespaces/prod/secrets", nil, "", want{core("list", "prod", "secrets", "", ""), `Kubernetes\list secrets`, false}},
		{"watch secrets is not a read", "GET", "/api/v1/secrets", nil, "watch=true", want{with(core("watch", "", "secrets", "", ""), func(a *Attributes) { a.Watch = true }), `Kubernetes\watch secrets`, false}},
		{"list pods in all namespaces", "GET", "/api/v1/pods", nil, "", want{core("list", "", "pods", "", ""), `Kubernetes\list pods`, true}},
		// cluster-scoped
		{"list nodes", "GET", "/api/v1/nodes", nil, "", want{core("list", "", "nodes", "", ""), `Kubernetes\list nodes`, true}},
		{"get a node", "GET", "/api/v1/nodes/n1", nil, "", want{core("get", "", "nodes", "n1", ""), `Kubernetes\get nodes`, true}},
		{"delete a node", "DELETE", "/api/v1/nodes/n1", nil, "", want{core("delete", "", "nodes", "n1", ""), `Kubernetes\delete nodes`, false}},
		{"node status", "PATCH", "/api/v1/nodes/n1/status", nil, "", want{core("patch", "", "nodes", "n1", "status"), `Kubernetes\patch nodes/status`, false}},
		{"node proxy with a path", "GET", "/api/v1/nodes/n1/proxy/metrics/cadvisor", nil, "", want{with(core("get", "", "nodes", "n1", "proxy"), func(a *Attributes) { a.Rest = []string{"metrics", "cadvisor"} }), `Kubernetes\proxy nodes`, false}},
		// the namespaces resource
		{"list namespaces", "GET", "/api/v1/namespaces", nil, "", want{core("list", "", "namespaces", "", ""), `Kubernetes\list namespaces`, true}},
		{"get a namespace", "GET", "/api/v1/namespaces/prod", nil, "", want{core("get", "prod", "namespaces", "prod", ""), `Kubernetes\get namespaces`, true}},
		{"delete a namespace", "DELETE", "/api/v1/namespaces/prod", nil, "", want{core("delete", "prod", "namespaces", "prod", ""), `Kubernetes\delete namespaces`, false}},
		{"create a namespace", "POST", "/api/v1/namespaces", nil, "", want{core("create", "", "namespaces", "", ""), `Kubernetes\create namespaces`, false}},
		{"namespace status", "PUT", "/api/v1/namespaces/prod/status", nil, "", want{core("update", "prod", "namespaces", "prod", "status"), `Kubernetes\update namespaces/status`, false}},
		{"namespace finalize", "PUT", "/api/v1/namespaces/prod/finalize", nil, "", want{core("update", "prod", "namespaces", "prod", "finalize"), `Kubernetes\update namespaces/finalize`, false}},
		{"watch namespaces", "GET", "/api/v1/namespaces", nil, "watch=1", want{with(core("watch", "", "namespaces", "", ""), func(a *Attributes) { a.Watch = true }), `Kubernetes\watch namespaces`, true}},
		// subresources
		{"exec by POST", "POST", "/api/v1/namespaces/prod/pods/web-1/exec", nil, "command=sh&stdin=true", want{core("create", "prod", "pods", "web-1", "exec"), `Kubernetes\exec pods`, false}},
		{"exec by GET (WebSocket)", "GET", "/api/v1/namespaces/prod/pods/web-1/exec", nil, "command=ls", want{core("get", "prod", "pods", "web-1", "exec"), `Kubernetes\exec pods`, false}},
		{"attach", "POST", "/api/v1/namespaces/prod/pods/web-1/attach", nil, "", want{core("create", "prod", "pods", "web-1", "attach"), `Kubernetes\attach pods`, false}},
		{"port-forward", "POST", "/api/v1/namespaces/prod/pods/web-1/portforward", nil, "ports=8080", want{core("create", "prod", "pods", "web-1", "portforward"), `Kubernetes\portforward pods`, false}},
		{"logs are not a read", "GET", "/api/v1/namespaces/prod/pods/web-1/log", nil, "follow=true", want{core("get", "prod", "pods", "web-1", "log"), `Kubernetes\log pods`, false}},
		{"pod proxy", "GET", "/api/v1/namespaces/prod/pods/web-1/proxy", nil, "", want{core("get", "prod", "pods", "web-1", "proxy"), `Kubernetes\proxy pods`, false}},
		{"service proxy with a path", "POST", "/api/v1/namespaces/prod/services/web:http/proxy/api/run", nil, "", want{with(core("create", "prod", "services", "web:http", "proxy"), func(a *Attributes) { a.Rest = []string{"api", "run"} }), `Kubernetes\proxy services`, false}},
		{"pod status", "GET", "/api/v1/namespaces/prod/pods/web-1/status", nil, "", want{core("get", "prod", "pods", "web-1", "status"), `Kubernetes\get pods/status`, true}},
		{"eviction", "POST", "/api/v1/namespaces/prod/pods/web-1/eviction", nil, "", want{core("create", "prod", "pods", "web-1", "eviction"), `Kubernetes\create pods/eviction`, false}},
		{"ephemeral containers", "PATCH", "/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers", nil, "", want{core("patch", "prod", "pods", "web-1", "ephemeralcontainers"), `Kubernetes\patch pods/ephemeralcontainers`, false}},
		{"service-account token", "POST", "/api/v1/namespaces/prod/serviceaccounts/default/token", nil, "", want{core("create", "prod", "serviceaccounts", "default", "token"), `Kubernetes\create serviceaccounts/token`, false}},
		// named groups
		{"list deployments", "GET", "/apis/apps/v1/namespaces/prod/deployments", nil, "", want{group("list", "apps", "v1", "prod", "deployments", "", ""), `Kubernetes\list deployments`, true}},
		{"scale a deployment", "PUT", "/apis/apps/v1/namespaces/prod/deployments/web/scale", nil, "", want{group("update", "apps", "v1", "prod", "deployments", "web", "scale"), `Kubernetes\update deployments/scale`, false}},
		{"read a deployment's scale", "GET", "/apis/apps/v1/namespaces/prod/deployments/web/scale", nil, "", want{group("get", "apps", "v1", "prod", "deployments", "web", "scale"), `Kubernetes\get deployments/scale`, true}},
		{"patch a deployment", "PATCH", "/apis/apps/v1/namespaces/prod/deployments/web", nil, "", want{group("patch", "apps", "v1", "prod", "deployments", "web", ""), `Kubernetes\patch deployments`, false}},
		{"delete a job", "DELETE", "/apis/batch/v1/namespaces/prod/jobs/nightly", nil, "", want{group("delete", "batch", "v1", "prod", "jobs", "nightly", ""), `Kubernetes\delete jobs`, false}},
		{"cluster role, a name with colons and capitals", "DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:Foo", nil, "", want{group("delete", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "system:Foo", ""), `Kubernetes\delete clusterroles`, false}},
		{"create a role binding", "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings", nil, "", want{group("create", "rbac.authorization.k8s.io", "v1", "prod", "rolebindings", "", ""), `Kubernetes\create rolebindings`, false}},
		{"beta version", "GET", "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas", nil, "", want{group("list", "flowcontrol.apiserver.k8s.io", "v1beta3", "", "flowschemas", "", ""), `Kubernetes\list flowschemas`, true}},
		{"CSR approval", "PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval", nil, "", want{group("update", "certificates.k8s.io", "v1", "", "certificatesigningrequests", "csr-1", "approval"), `Kubernetes\update certificatesigningrequests/approval`, false}},
		{"custom resource carries its group", "DELETE", "/apis/cert-manager.io/v1/namespaces/prod/certificates/web-tls", nil, "", want{group("delete", "cert-manager.io", "v1", "prod", "certificates", "web-tls", ""), `Kubernetes\delete certificates.cert-manager.io`, false}},
		{"custom resource status", "PATCH", "/apis/example.com/v1alpha1/widgets/w/status", nil, "", want{group("patch", "example.com", "v1alpha1", "", "widgets", "w", "status"), `Kubernetes\patch widgets.example.com/status`, false}},
		{"custom resource list is a read", "GET", "/apis/example.com/v1/namespaces/prod/widgets", nil, "", want{group("list", "example.com", "v1", "prod", "widgets", "", ""), `Kubernetes\list widgets.example.com`, true}},
		// watch
		{"watch=true", "GET", "/api/v1/namespaces/prod/pods", nil, "watch=true", want{with(core("watch", "prod", "pods", "", ""), func(a *Attributes) { a.Watch = true }), `Kubernetes\watch pods`, true}},
		{"watch=1", "GET", "/api/v1/namespaces/prod/pods", nil, "watch=1&resourceVersion=10", want{with(core("watch", "prod", "pods", "", ""), func(a *Attributes) { a.Watch = true }), `Kubernetes\watch pods`, true}},
		{"watch=false is list", "GET", "/api/v1/namespaces/prod/pods", nil, "watch=false", want{core("list", "prod", "pods", "", ""), `Kubernetes\list pods`, true}},
		{"watch=0 is list", "GET", "/api/v1/namespaces/prod/pods", nil, "watch=0", want{core("list", "prod", "pods", "", ""), `Kubernetes\list pods`, true}},
		{"watch one object by field selector", "GET", "/api/v1/namespaces/prod/pods", nil, "watch=true&fieldSelector=metadata.name%3Dweb-1", want{with(core("watch", "prod", "pods", "web-1", ""), func(a *Attributes) {
			a.Watch, a.FieldSelector, a.NameFromFieldSelector = true, "metadata.name=web-1", true
		}), `Kubernetes\watch pods`, true}},
		{"list by == field selector names the object", "GET", "/api/v1/namespaces/prod/secrets", nil, "fieldSelector=type%3Dopaque,metadata.name%3D%3Ddb", want{with(core("list", "prod", "secrets", "db", ""), func(a *Attributes) {
			a.FieldSelector, a.NameFromFieldSelector = "type=opaque,metadata.name==db", true
		}), `Kubernetes\list secrets`, false}},
		{"a != field selector names nothing", "GET", "/api/v1/pods", nil, "fieldSelector=metadata.name!%3Dweb-1", want{with(core("list", "", "pods", "", ""), func(a *Attributes) { a.FieldSelector = "metadata.name!=web-1" }), `Kubernetes\list pods`, true}},
		{"label selector kept", "GET", "/api/v1/pods", nil, "labelSelector=app+in+(web,api)", want{with(core("list", "", "pods", "", ""), func(a *Attributes) { a.LabelSelector = "app in (web,api)" }), `Kubernetes\list pods`, true}},
		{"deprecated watch prefix", "GET", "/api/v1/watch/namespaces/prod/pods", nil, "", want{with(core("watch", "prod", "pods", "", ""), func(a *Attributes) { a.Watch, a.WatchPrefix = true, true }), `Kubernetes\watch pods`, true}},
		{"deprecated watch prefix, one object", "GET", "/api/v1/watch/namespaces/prod/secrets/db", nil, "", want{with(core("watch", "prod", "secrets", "db", ""), func(a *Attributes) { a.Watch, a.WatchPrefix = true, true }), `Kubernetes\watch secrets`, false}},
		{"deprecated watch prefix, named group", "GET", "/apis/apps/v1/watch/deployments", nil, "", want{with(group("watch", "apps", "v1", "", "deployments", "", ""), func(a *Attributes) { a.Watch, a.WatchPrefix = true, true }), `Kubernetes\watch deployments`, true}},
		{"deprecated watch prefix, a namespace", "GET", "/api/v1/watch/namespaces/prod", nil, "", want{with(core("watch", "prod", "namespaces", "prod", ""), func(a *Attributes) { a.Watch, a.WatchPrefix = true, true }), `Kubernetes\watch namespaces`, true}},
		// dry run
		{"dry-run delete", "DELETE", "/api/v1/namespaces/prod/pods/web-1", nil, "dryRun=All", want{with(core("delete", "prod", "pods", "web-1", ""), func(a *Attributes) { a.DryRun = true }), `Kubernetes\delete pods`, false}},
		{"dry-run create", "POST", "/apis/apps/v1/namespaces/prod/deployments", nil, "dryRun=All&fieldManager=kubectl", want{with(group("create", "apps", "v1", "prod", "deployments", "", ""), func(a *Attributes) { a.DryRun = true }), `Kubernetes\create deployments`, false}},
		// discovery and other non-resource paths
		{"root", "GET", "/", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/api", "GET", "/api", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/api/v1", "GET", "/api/v1", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/apis", "GET", "/apis", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/apis/GROUP", "GET", "/apis/apps", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/apis/GROUP/VERSION", "GET", "/apis/apps/v1", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/version", "GET", "/version", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/openapi/v2", "GET", "/openapi/v2", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/openapi/v3 of a group", "GET", "/openapi/v3/apis/apps/v1", nil, "hash=ABC", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/healthz", "GET", "/healthz", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/livez check", "GET", "/livez/ping", nil, "verbose=1", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/readyz by HEAD", "HEAD", "/readyz", nil, "", want{nonResource("head"), `Kubernetes\discovery`, true}},
		{"issuer document", "GET", "/.well-known/openid-configuration", nil, "", want{nonResource("get"), `Kubernetes\discovery`, true}},
		{"/metrics is gated", "GET", "/metrics", nil, "", want{nonResource("get"), `Kubernetes\get /metrics`, false}},
		{"/logs files are gated", "GET", "/logs/kube-apiserver.log", nil, "", want{nonResource("get"), `Kubernetes\get /logs/*`, false}},
		{"a write to a discovery path is not discovery", "POST", "/version", nil, "", want{nonResource("post"), `Kubernetes\post /version`, false}},
		{"HEAD on a gated path counts as get", "HEAD", "/metrics", nil, "", want{nonResource("head"), `Kubernetes\get /metrics`, false}},
		{"unknown top-level path", "DELETE", "/debug/flags/v", nil, "", want{nonResource("delete"), `Kubernetes\delete /debug/*`, false}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			segs := c.segs
			if segs == nil {
				segs = split(c.path)
			}
			q, err := url.ParseQuery(c.query)
			require.NoError(t, err)
			got, err := Parse(c.method, segs, q)
			require.NoError(t, err)
			w := c.want.a
			w.Path = "/" + strings.Join(segs, "/")
			require.Equal(t, w, got)
			require.Equal(t, c.want.task, TaskName(got))
			require.Equal(t, c.want.read, Read(got))
			require.Equal(t, segs, got.Segments(), "attributes re-encode to the call's segments")
		})
	}
	require.GreaterOrEqual(t, len(cases), 60)
}

// TestParseRefuses refuses the calls that the API server, a proxy in
// between or a reader of the audit could read as another call.
func TestParseRefuses(t *testing.T) {
	cases := []struct {
		desc   string
		method string
		segs   []string
		query  string
		reason string // a word of the reason
	}{
		{"dot-dot segment", "DELETE", []string{"api", "v1", "namespaces", "prod", "pods", "x", "..", "y"}, "", "dot segment"},
		{"dot segment", "GET", []string{"api", "v1", "namespaces", ".", "pods"}, "", "dot segment"},
		{"dot-dot before the prefix", "GET", []string{"..", "api", "v1", "pods"}, "", "dot segment"},
		{"dot segment in a non-resource path", "GET", []string{"healthz", "..", "metrics"}, "", "dot segment"},
		{"encoded slash in a name", "DELETE", []string{"api", "v1", "namespaces", "prod", "pods", "x/../y"}, "", "encoded slash"},
		{"encoded slash in a namespace", "GET", []string{"api", "v1", "namespaces", "prod/pods", "secrets"}, "", "encoded slash"},
		{"empty segment (//)", "GET", []string{"api", "v1", "", "namespaces", "prod", "pods"}, "", "empty"},
		{"empty name (pods//exec)", "POST", []string{"api", "v1", "namespaces", "prod", "pods", "", "exec"}, "", "empty"},
		{"trailing slash", "DELETE", []string{"api", "v1", "namespaces", "prod", "pods", "web-1", ""}, "", "empty"},
		{"trailing slash on a list", "GET", []string{"api", "v1", "namespaces", "prod", "secrets", ""}, "", "empty"},
		{"percent in a name", "GET", []string{"api", "v1", "namespaces", "prod", "pods", "a%2Fb"}, "", "%"},
		{"backslash", "GET", []string{"api", "v1", "namespaces", "prod", "pods", `a\b`}, "", `\`},
		{"space", "GET", []string{"api", "v1", "namespaces", "prod", "pods", "a b"}, "", "space"},
		{"NUL", "GET", []string{"api", "v1", "namespaces", "prod", "pods", "a\x00"}, "", "control"},
		{"non-ASCII", "GET", []string{"api", "v1", "namespaces", "prod", "pods", "pöd"}, "", "non-ASCII"},
		{"upper-case resource", "DELETE", split("/api/v1/namespaces/prod/Pods/web-1"), "", "lower-case"},
		{"upper-case namespace", "DELETE", split("/api/v1/namespaces/Prod/pods/web-1"), "", "lower-case"},
		{"upper-case group", "DELETE", split("/apis/Apps/v1/namespaces/prod/deployments/web"), "", "lower-case"},
		{"upper-case version", "GET", split("/api/V1/namespaces/prod/secrets"), "", "lower-case"},
		{"upper-case subresource", "POST", split("/api/v1/namespaces/prod/pods/web-1/Exec"), "", "lower-case"},
		{"namespace not a DNS label", "GET", split("/api/v1/namespaces/prod_1/pods"), "", "DNS label"},
		{"namespace ending in a dash", "GET", split("/api/v1/namespaces/prod-/pods"), "", "DNS label"},
		{"namespace too long", "GET", split("/api/v1/namespaces/" + strings.Repeat("a", 64) + "/pods"), "", "63"},
		{"name too long", "GET", split("/api/v1/namespaces/prod/pods/" + strings.Repeat("a", 254)), "", "253"},
		{"resource with a dot", "GET", split("/apis/apps/v1/deployments.apps"), "", "DNS label"},
		{"namespaces inside a namespace", "DELETE", split("/api/v1/namespaces/staging/namespaces/prod"), "", "not inside a namespace"},
		{"watch=yes", "GET", split("/api/v1/secrets"), "watch=yes", "watch"},
		{"watch with no value", "GET", split("/api/v1/secrets"), "watch", "watch"},
		{"watch=True", "GET", split("/api/v1/secrets"), "watch=True", "watch"},
		{"watch twice", "GET", split("/api/v1/secrets"), "watch=false&watch=true", "2 times"},
		{"Watch spelled in another case", "GET", split("/api/v1/secrets"), "Watch=true", "spelled"},
		{"watch on a named get", "GET", split("/api/v1/namespaces/prod/secrets/db"), "watch=true", "watch"},
		{"watch on a write", "DELETE", split("/api/v1/namespaces/prod/pods"), "watch=1", "watch"},
		{"watch on a non-resource path", "GET", split("/version"), "watch=true", "non-resource"},
		{"watch prefix with DELETE", "DELETE", split("/api/v1/watch/namespaces/prod/pods"), "", "/watch/"},
		{"watch prefix with nothing after it", "GET", split("/api/v1/watch"), "", "/watch/"},
		{"dryRun=all", "DELETE", split("/api/v1/namespaces/prod/pods/web-1"), "dryRun=all", "dryRun"},
		{"dryRun empty", "DELETE", split("/api/v1/namespaces/prod/pods/web-1"), "dryRun=", "dryRun"},
		{"dryrun spelled in another case", "DELETE", split("/api/v1/namespaces/prod/pods/web-1"), "dryrun=All", "spelled"},
		{"fieldSelector twice", "GET", split("/api/v1/pods"), "fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db", "2 times"},
		{"removed proxy prefix", "GET", split("/api/v1/proxy/namespaces/prod/pods/web-1"), "", "/proxy/"},
		{"parts after a subresource", "POST", split("/api/v1/namespaces/prod/pods/web-1/exec/more"), "", "after subresource"},
		{"unknown method", "OPTIONS", split("/api/v1/pods"), "", "method"},
		{"lower-case method", "get", split("/api/v1/pods"), "", "method"},
		{"method on a non-resource path", "TRACE", split("/version"), "", "method"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			require.NoError(t, err)
			_, err = Parse(c.method, c.segs, q)
			require.ErrorIs(t, err, ErrRefused)
			var e *Error
			require.True(t, errors.As(err, &e))
			require.Contains(t, e.Reason, c.reason)
		})
	}
}
