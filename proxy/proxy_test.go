package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// credentialRoutes has one upstream per credential_params_action.
func credentialRoutes(t *testing.T) *Proxy {
	t.Helper()
	routes, err := newRoutes([]Upstream{
		{Name: "strip", URL: "http://127.0.0.1:1", Prefix: "/strip/", Hosts: []string{"strip.elevate.test"},
			CredentialParams: []string{"api-key", "Access_Token"}},
		{Name: "refuse", URL: "http://127.0.0.1:2", Prefix: "/refuse/", CredentialParams: []string{"api-key", "Access_Token"},
			CredentialParamsAction: "refuse"},
		{Name: "none", URL: "http://127.0.0.1:3", Prefix: "/none/"},
	})
	require.NoError(t, err)
	return &Proxy{routes: routes}
}

// TestCredentialParams: credential parameters are found in any case and
// encoding an upstream may read them in, then stripped (the judged query
// and the forwarded one alike) or refused, as the route says.
func TestCredentialParams(t *testing.T) {
	p := credentialRoutes(t)
	for _, tc := range []struct {
		name, query string
		kept        string // the forwarded query under strip
		cred        bool   // a credential is present
	}{
		{"exact", "api-key=mine&columns=x", "columns=x", true},
		{"upper case", "API-KEY=mine&columns=x", "columns=x", true},
		{"title case", "columns=x&Api-Key=mine", "columns=x", true},
		{"encoded dash", "api%2Dkey=mine&columns=x", "columns=x", true},
		{"encoded lower-case escape", "api%2dKEY=mine", "", true},
		{"double encoded", "api%252Dkey=mine&columns=x", "columns=x", true},
		{"configured in mixed case", "access_token=mine&ACCESS%5FTOKEN=2&columns=x", "columns=x", true},
		{"long s folds to s", "acce%C5%BFs_token=mine", "", true},
		{"Kelvin sign folds to k", "api-%E2%84%AAey=mine", "", true},
		{"no value", "API-KEY&columns=x", "columns=x", true},
		{"twice", "api-key=a&columns=x&Api-Key=b", "columns=x", true},
		{"plus is a space, not a dash", "api+key=x", "api+key=x", false},
		{"a value is data", "columns=api-key", "columns=api-key", false},
		{"another name", "api-keys=x&key=y", "api-keys=x&key=y", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, rec, prob := p.resolve("GET", "/strip/x?"+tc.query, "elevate.test", false)
			require.Nil(t, prob)
			require.Equal(t, tc.kept, res.rawQuery, "the forwarded query")
			want, err := url.ParseQuery(tc.kept)
			require.NoError(t, err)
			if len(want) == 0 {
				want = url.Values{}
			}
			require.Equal(t, want, res.call.Query, "the judged query is the forwarded one")
			require.Equal(t, "strip", rec.Upstream)
			require.Equal(t, tc.kept, res.call.RawQuery, "the recorded query is the forwarded one")
			require.Equal(t, tc.kept, rec.Query)

			res, rec, prob = p.resolve("GET", "/refuse/x?"+tc.query, "elevate.test", false)
			if !tc.cred {
				require.Nil(t, prob)
				return
			}
			require.NotNil(t, prob, "refused under refuse")
			require.Equal(t, http.StatusBadRequest, prob.Status)
			require.Equal(t, "urn:elevate:problem:credential-in-request", prob.Type)
			require.Equal(t, "bad_request", rec.Event)
			require.Equal(t, "refuse", rec.Upstream)
			require.Regexp(t, `api-key|access_token`, rec.Reason)
			require.NotContains(t, rec.Reason+prob.Detail, "mine", "never the value")
			require.Equal(t, tc.kept, rec.Query, "the query recorded without the credential")
			require.Nil(t, res.route, "nothing to forward")
		})
	}

	// Forward mode reads the same rules; a route without credential
	// parameters forwards every parameter.
	res, _, prob := p.resolve("GET", "/x?API-KEY=mine&a=1", "strip.elevate.test", true)
	require.Nil(t, prob)
	require.Equal(t, "a=1", res.rawQuery)
	res, _, prob = p.resolve("GET", "/none/x?API-KEY=mine", "elevate.test", false)
	require.Nil(t, prob)
	require.Equal(t, "API-KEY=mine", res.rawQuery)
}

func TestCredentialParamsConfig(t *testing.T) {
	for _, tc := range []struct {
		up   Upstream
		want string
	}{
		{Upstream{Name: "a", URL: "http://x", Prefix: "/a/", CredentialParams: []string{"k"}, CredentialParamsAction: "drop"},
			`upstreams[0].credential_params_action: "drop" must be strip or refuse`},
		{Upstream{Name: "a", URL: "http://x", Prefix: "/a/", CredentialParams: []string{"k", ""}},
			`upstreams[0].credential_params[1]: "" is not a parameter name`},
		{Upstream{Name: "a", URL: "http://x", Prefix: "/a/", CredentialParams: []string{"k=v"}},
			`upstreams[0].credential_params[0]: "k=v" is not a parameter name`},
	} {
		_, err := newRoutes([]Upstream{tc.up})
		require.EqualError(t, err, tc.want)
	}
	for _, action := range []string{"", "strip", "refuse"} {
		_, err := newRoutes([]Upstream{{Name: "a", URL: "http://x", Prefix: "/a/", CredentialParams: []string{"k"}, CredentialParamsAction: action}})
		require.NoError(t, err, action)
	}
}

// TestFormBodyCredentials: a body an upstream may read as form parameters
// is read on a route with credential parameters, and they are stripped
// (Content-Length follows) or the call refused; other bodies pass unread.
func TestFormBodyCredentials(t *testing.T) {
	p := credentialRoutes(t)
	route := func(name string) *route {
		for _, rt := range p.routes {
			if rt.Name == name {
				return rt
			}
		}
		t.Fatalf("no route %s", name)
		return nil
	}
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, route, body string
		header            []string // name, value pairs
		want              *string  // the body forwarded in place of the caller's; nil: the caller's, unread
		status            int      // a refusal
		slug              string
	}{
		{name: "stripped", route: "strip", body: "API-KEY=mine&name=x", header: []string{"Content-Type", form}, want: ptr("name=x")},
		{name: "type with parameters", route: "strip", body: "Api-Key=mine", header: []string{"Content-Type", "Application/X-WWW-Form-Urlencoded; charset=utf-8"}, want: ptr("")},
		{name: "no type", route: "strip", body: "name=x&api%2Dkey=mine", want: ptr("name=x")},
		{name: "semicolon pair", route: "strip", body: "a=1;api-key=mine&b=2", header: []string{"Content-Type", form}, want: ptr("b=2")},
		{name: "invalid escapes elsewhere", route: "strip", body: "a=%zz&API-KEY=1", header: []string{"Content-Type", form}, want: ptr("a=%zz")},
		{name: "read whole, nothing to strip", route: "strip", body: "name=x", header: []string{"Content-Type", form}, want: ptr("name=x")},
		{name: "one form type among two", route: "strip", body: "api-key=1", header: []string{"Content-Type", "application/json", "Content-Type", form}, want: ptr("")},
		{name: "json passes unread", route: "strip", body: `{"api-key":"mine"}`, header: []string{"Content-Type", "application/json"}},
		{name: "route without credential parameters", route: "none", body: "api-key=mine", header: []string{"Content-Type", form}},
		{name: "refused", route: "refuse", body: "name=x&API-KEY=mine", header: []string{"Content-Type", form}, status: 400, slug: "credential-in-request"},
		{name: "refuse without a credential", route: "refuse", body: "name=x", header: []string{"Content-Type", form}, want: ptr("name=x")},
		{name: "compressed", route: "strip", body: "x", header: []string{"Content-Type", form, "Content-Encoding", "gzip"}, status: 400, slug: "bad-body"},
		{name: "too large", route: "strip", body: strings.Repeat("a", maxFormBytes+1), header: []string{"Content-Type", form}, status: 413, slug: "body-too-large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tc.body))
			for i := 0; i < len(tc.header); i += 2 {
				r.Header.Add(tc.header[i], tc.header[i+1])
			}
			body, prob, why := formBody(r, route(tc.route))
			if tc.status != 0 {
				require.NotNil(t, prob)
				require.Equal(t, tc.status, prob.Status)
				require.Equal(t, "urn:elevate:problem:"+tc.slug, prob.Type)
				require.NotEmpty(t, why)
				require.NotContains(t, why+prob.Detail, "mine")
				return
			}
			require.Nil(t, prob)
			if tc.want == nil {
				require.Nil(t, body, "forwarded unread")
				rest, _ := io.ReadAll(r.Body)
				require.Equal(t, tc.body, string(rest))
				return
			}
			require.Equal(t, *tc.want, string(body))

			out := (&Proxy{}).outbound(r.Context(), r, route(tc.route), []string{"x"}, "", body, "elevate.test", true, false)
			require.Equal(t, int64(len(*tc.want)), out.ContentLength)
			fwd, _ := io.ReadAll(out.Body)
			require.Equal(t, *tc.want, string(fwd))
		})
	}
}

func ptr(s string) *string { return &s }

// TestHeaderSpellings: headers are removed in every spelling an upstream
// may read them in: any case, and "_" for "-" (CGI-style servers).
func TestHeaderSpellings(t *testing.T) {
	t.Setenv("ELEVATE_TEST_KEY", "elevate-secret")
	routes, err := newRoutes([]Upstream{{Name: "h", URL: "http://127.0.0.1:1", Prefix: "/h/",
		Credential: &Credential{Type: "header", Header: "x-api-key", ValueEnv: "ELEVATE_TEST_KEY"}}})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/h/x", nil)
	for _, k := range []string{"X-Api-Key", "X_Api_Key", "x_api-key", "X_Forwarded_For", "x_http_method_override", "X_Original_URL"} {
		r.Header[k] = []string{"caller"}
	}
	r.Header.Set("X-Kept", "1")
	out := (&Proxy{}).outbound(r.Context(), r, routes[0], []string{"x"}, "", nil, "elevate.test", true, false)
	require.Equal(t, []string{"elevate-secret"}, out.Header.Values("X-Api-Key"), "elevate's credential, once")
	for k, v := range out.Header {
		require.NotContains(t, v, "caller", "header %s reached the upstream", k)
	}
	require.Equal(t, "1", out.Header.Get("X-Kept"))
}

// TestResolveAsTyped: POST /v1/check reads its URL with the proxy's own
// parser: the method as typed, the path and query as written.
func TestResolveAsTyped(t *testing.T) {
	p := credentialRoutes(t)
	for _, tc := range []struct {
		method, url string
		slug        string // a refusal
		path        []string
		query       url.Values
	}{
		{method: "post", url: "http://elevate.test/strip/x", slug: "bad-method"},
		{method: "Get", url: "http://strip.elevate.test/x", slug: "bad-method"},
		{method: "GET", url: "http://elevate.test/strip/a%2Fb", path: []string{"a/b"}, query: url.Values{}},
		{method: "GET", url: "http://elevate.test/strip/%2e%2e/x", slug: "ambiguous-path"},
		{method: "GET", url: "http://elevate.test/strip/x#frag", slug: "ambiguous-path"},
		{method: "GET", url: "http://elevate.test/strip/x?a=1#frag", slug: "bad-query"},
		{method: "GET", url: "http://elevate.test/strip/caf%C3%A9", path: []string{"café"}, query: url.Values{}},
		{method: "GET", url: "http://elevate.test/strip/café", slug: "ambiguous-path"},
		{method: "GET", url: "http://elevate.test/strip/a b", slug: "bad-url"},
		{method: "GET", url: "http://strip.elevate.test", slug: "ambiguous-path"},
		{method: "GET", url: "http://strip.elevate.test?x=1", slug: "ambiguous-path"},
		{method: "GET", url: "HTTP://STRIP.elevate.test:80/x?Api-Key=1&b=2", path: []string{"x"}, query: url.Values{"b": {"2"}}},
		{method: "GET", url: "https://strip.elevate.test/x", path: []string{"x"}, query: url.Values{}},
		{method: "GET", url: "http:/strip/x", slug: "bad-host"},
		{method: "GET", url: "ftp://strip.elevate.test/x", slug: "bad-url"},
		{method: "GET", url: "/strip/x", slug: "bad-url"},
		{method: "GET", url: "http://elevate.test/refuse/x?API-KEY=1", slug: "credential-in-request"},
		{method: "GET", url: "http://elevate.test/strip/x?_method=DELETE", slug: "method-override"},
	} {
		call, prob := p.Resolve(tc.method, tc.url)
		if tc.slug != "" {
			require.NotNil(t, prob, "%s %s", tc.method, tc.url)
			require.Equal(t, "urn:elevate:problem:"+tc.slug, prob.Type, "%s %s: %s", tc.method, tc.url, prob.Detail)
			continue
		}
		require.Nil(t, prob, "%s %s", tc.method, tc.url)
		require.Equal(t, tc.method, call.Method)
		require.Equal(t, tc.path, call.Path, tc.url)
		require.Equal(t, tc.query, call.Query, tc.url)
	}
}
