package openapi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const testdata = "../../test/testdata/openapi"

// table is the shape of a route table, read back from a draft.
type table struct {
	Upstream string `yaml:"upstream"`
	Tasks    map[string]struct {
		Read        bool   `yaml:"read"`
		Description string `yaml:"description"`
	} `yaml:"tasks"`
	Routes []string `yaml:"routes"`
}

func importFile(t *testing.T, name string, opt Options) (*Draft, table) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testdata, name))
	require.NoError(t, err)
	d, err := Import(doc, opt)
	require.NoError(t, err)
	var tb table
	dec := yaml.NewDecoder(bytes.NewReader(d.YAML))
	dec.KnownFields(true) // nothing but the route table's keys
	require.NoError(t, dec.Decode(&tb), "%s", d.YAML)
	require.Len(t, tb.Tasks, len(d.Tasks))
	require.Len(t, tb.Routes, len(d.Tasks))
	for i, task := range d.Tasks {
		require.Equal(t, task.Method+" "+task.Path+" -> "+task.Name, tb.Routes[i])
		require.Equal(t, task.Read, tb.Tasks[task.Name].Read, task.Name)
	}
	return d, tb
}

// TestImportExchange drafts the demo upstream's route table from its
// OpenAPI 3 description: the tasks the built-in catalog has, reads marked,
// the server's /exchange path left out of the routes and said so at the top.
func TestImportExchange(t *testing.T) {
	d, tb := importFile(t, "exchange.yaml", Options{Upstream: "exchange", Scope: "Exchange"})
	require.Equal(t, "exchange", tb.Upstream)
	require.Equal(t, []Task{
		{Name: `Exchange\New-Journal-Rule`, Description: "Create a journal rule", Method: "POST", Path: "/journal-rules"},
		{Name: `Exchange\Remove-Journal-Rule`, Description: "Delete a journal rule", Method: "DELETE", Path: "/journal-rules/{id}"},
		{Name: `Exchange\Get-Mailboxes`, Read: true, Description: "List mailboxes", Method: "GET", Path: "/mailboxes"},
		{Name: `Exchange\Get-Mailbox`, Read: true, Description: "Read one mailbox", Method: "GET", Path: "/mailboxes/{id}"},
		{Name: `Exchange\New-Move-Request`, Description: "Move a mailbox to another database", Method: "POST", Path: "/mailboxes/{id}/move-requests"},
		{Name: `Exchange\Search-Mailbox`, Description: "Search the messages of a mailbox", Method: "POST", Path: "/mailboxes/{id}/search"},
	}, d.Tasks)
	require.Contains(t, string(d.YAML), "# Paths are relative to the upstream's base URL: the document's base path /exchange")
	require.Len(t, d.Review, 1)
	require.Contains(t, d.Review[0], `POST /mailboxes/{id}/search (Exchange\Search-Mailbox): named like a read ("search")`)
}

// TestImportSwagger2 drafts from a Swagger 2.0 document and lists what to
// review: each rule of the review list has a case in dns-swagger2.yaml.
func TestImportSwagger2(t *testing.T) {
	d, tb := importFile(t, "dns-swagger2.yaml", Options{})
	require.Equal(t, "example-dns", tb.Upstream, "the upstream defaults to the title")
	require.Contains(t, tb.Tasks, `ExampleDns\List-Servers`, "the scope defaults to the upstream name")
	require.Contains(t, string(d.YAML), "the document's base path /api/v1 (basePath /api/v1)")
	require.Contains(t, tb.Routes, `GET,HEAD /servers -> ExampleDns\List-Servers`, "a HEAD beside a GET is the GET's route")
	require.Contains(t, tb.Routes, `DELETE /servers/{server_id}/zones/{zone_id} -> ExampleDns\Delete-Servers-Server-Id-Zones-Zone-Id`)
	require.Contains(t, tb.Routes, `PUT /servers/{server_id}/zones/{zone_id} -> ExampleDns\Get-Zone-2`)
	require.True(t, tb.Tasks[`ExampleDns\Get-TSIG-Key`].Read)
	require.False(t, tb.Tasks[`ExampleDns\Create-Zone`].Read)
	require.NotContains(t, tb.Tasks, `ExampleDns\Get-Local-Statistics`, "an overlapping route is left out")
	require.Contains(t, string(d.YAML), `# - GET /servers/localhost/statistics -> ExampleDns\Get-Local-Statistics`)

	want := []string{
		`HEAD /servers: matched as GET`,
		`POST /servers/{server_id}/search-data (ExampleDns\Search-Data): named like a read ("search")`,
		`GET /servers/{server_id}/tsigkeys/{tsigkey_id} (ExampleDns\Get-TSIG-Key): its response holds fields named like secrets (key)`,
		`GET /servers/{server_id}/zones: no operationId; named ExampleDns\Get-Servers-Server-Id-Zones`,
		`GET /servers/{server_id}/zones (ExampleDns\Get-Servers-Server-Id-Zones): its response holds fields named like secrets ([].tsig.key);`,
		`GET /servers/{server_id}/zones/{zone_id} (ExampleDns\Get-Zone): its response holds fields named like secrets (tsig.key);`,
		`PUT /servers/{server_id}/zones/{zone_id}: ExampleDns\Get-Zone is already GET /servers/{server_id}/zones/{zone_id}'s task; named ExampleDns\Get-Zone-2`,
		`DELETE /servers/{server_id}/zones/{zone_id}: no operationId`,
		`GET /servers/localhost/statistics: overlaps GET /servers/{server_id}/statistics`,
	}
	require.Len(t, d.Review, len(want), "%s", strings.Join(d.Review, "\n"))
	for i, w := range want {
		require.Contains(t, d.Review[i], w)
	}
	// The review list is in the draft too, one comment line each.
	for _, r := range d.Review {
		require.Contains(t, string(d.YAML), "# - "+r)
	}
}

// TestNames: how operationIds and paths become task names.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"listUsers", "List-Users"},
		{"get_zone_by_id", "Get-Zone-By-Id"},
		{"ContainerList", "Container-List"},
		{"getHTTPConfig", "Get-HTTP-Config"},
		{"getTSIGKey", "Get-TSIG-Key"},
		{"get-v2-info", "Get-V2-Info"},
		{"users.delete", "Users-Delete"},
		{"élan", "Lan"},
	} {
		require.Equal(t, tc.want, strings.Join(capitals(words(tc.in)), "-"), tc.in)
	}
	require.Equal(t, "Delete-Zones-Zone", nameFromPath("DELETE", "/zones/{zone}"))
	require.Equal(t, "Post-Api-Action-Delete", nameFromPath("POST", "/api?action=delete"))
}

// TestSecretNames: which property names the review list calls secrets.
func TestSecretNames(t *testing.T) {
	for _, n := range []string{"password", "mutual_password", "passwd", "client_secret", "apiKey", "api_key", "privateKey", "token", "JoinTokens", "credentials", "key"} {
		require.True(t, secretName(n), n)
	}
	for _, n := range []string{"name", "keyboard", "monkey", "PublicKey", "PrivatePort", "tokenCount", "id"} {
		require.False(t, secretName(n), n)
	}
}

// TestImportRefusals: input that is no OpenAPI document this can use is
// refused with one line that says what is wrong.
func TestImportRefusals(t *testing.T) {
	big := append([]byte("openapi: 3.0.3\ninfo: {title: big, version: '1'}\npaths: {}\nx-pad: '"), bytes.Repeat([]byte("a"), 10<<20)...)
	for _, tc := range []struct {
		desc, doc, want string
	}{
		{"empty", "", "the document is empty"},
		{"random JSON", `{"name": "not an API", "items": [1, 2]}`, "no openapi or swagger key at the top level"},
		{"a JSON array", `[1, 2, 3]`, "the top level is not a mapping"},
		{"YAML without openapi or swagger", "title: x\npaths: {}\n", "no openapi or swagger key at the top level"},
		{"HTML", "<!doctype html><html><body>API docs</body></html>", "looks like HTML or XML"},
		{"truncated JSON", `{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {`, "not valid JSON or YAML"},
		{"a number for a version", "openapi: 3.0\ninfo: {title: t, version: '1'}\npaths: {}\n", "the version must be a string"},
		{"Swagger 1.2", `{"swagger": "1.2", "apis": []}`, "only Swagger 2.0 is supported"},
		{"OpenAPI 4", `{"openapi": "4.0.0", "paths": {}}`, "only OpenAPI 3.x"},
		{"no paths", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n", "it has no paths"},
		{"a parameter across segments", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /files/{dir/name}:\n    get: {responses: {'200': {description: ok}}}\n", `path "/files/{dir/name}": a parameter spans segments`},
		{"a parameter beside literal text", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /files/{name}.json:\n    get: {responses: {'200': {description: ok}}}\n", `does not fill the whole segment`},
		{"an empty segment", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a//b:\n    get: {responses: {'200': {description: ok}}}\n", "an empty segment"},
		{"an external $ref", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    $ref: 'other.yaml#/paths/a'\n", "OpenAPI 3.0.3:"},
		{"a URL $ref", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: 'http://127.0.0.1:1/x.yaml#/r'}\n", "OpenAPI 3.0.3:"},
		{"a 10 MB document", string(big), "larger than 8 MiB"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := Import([]byte(tc.doc), Options{})
			require.Nil(t, d)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInput), "%v", err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// Real documents that Debian packages ship (test/e2e/install.sh puts them
// in place): the Docker Engine API (Swagger 2.0) and the Ceph dashboard's
// REST API (OpenAPI 3).
var published = []struct {
	name, path, upstream string
	tasks                map[string]bool // some tasks and whether each is a read
	review               string          // one thing the review list must say
}{
	{
		name: "Docker Engine API", path: "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml", upstream: "docker",
		tasks:  map[string]bool{`Docker\Container-List`: true, `Docker\Container-Delete`: false, `Docker\Swarm-Unlockkey`: true, `Docker\Image-Create`: false},
		review: `GET /swarm/unlockkey (Docker\Swarm-Unlockkey): its response holds fields named like secrets (UnlockKey)`,
	},
	{
		name: "Ceph REST API", path: "/usr/share/ceph/mgr/dashboard/openapi.yaml", upstream: "ceph",
		tasks:  map[string]bool{`Ceph\Get-Pool`: true, `Ceph\Delete-Pool-Pool-Name`: false},
		review: `GET /api/iscsi/discoveryauth (Ceph\Get-Iscsi-Discoveryauth): its response holds fields named like secrets ([].mutual_password, [].password)`,
	},
}

// TestImportPublishedDocuments drafts route tables from real published
// documents: every operation a task or a route left out for review, every
// route unique.
func TestImportPublishedDocuments(t *testing.T) {
	for _, p := range published {
		t.Run(p.name, func(t *testing.T) {
			doc, err := os.ReadFile(p.path)
			if errors.Is(err, os.ErrNotExist) {
				t.Skipf("%s is not here: test/e2e/install.sh puts it in place from its Debian package", p.path)
			}
			require.NoError(t, err)
			d, err := Import(doc, Options{Upstream: p.upstream})
			require.NoError(t, err)
			require.Greater(t, len(d.Tasks), 50)
			var tb table
			require.NoError(t, yaml.Unmarshal(d.YAML, &tb))
			require.Len(t, tb.Tasks, len(d.Tasks))
			routes := map[string]bool{}
			for _, r := range tb.Routes {
				route, _, _ := strings.Cut(r, " -> ")
				require.False(t, routes[route], "route %s twice", route)
				routes[route] = true
			}
			for name, read := range p.tasks {
				require.Contains(t, tb.Tasks, name)
				require.Equal(t, read, tb.Tasks[name].Read, name)
			}
			require.Contains(t, strings.Join(d.Review, "\n"), p.review)
		})
	}
}

// TestNamesLeaveOutTheAPIPrefix: names made from paths leave out the
// leading api and version segments every path shares; routes keep them.
func TestNamesLeaveOutTheAPIPrefix(t *testing.T) {
	doc := `openapi: 3.0.3
info: {title: Zones, version: "1"}
paths:
  /api/v1/zones/{zone}:
    delete: {responses: {"204": {description: deleted}}}
  /api/v1/servers:
    get: {responses: {"200": {description: servers}}}
`
	d, err := Import([]byte(doc), Options{Scope: "DNS"})
	require.NoError(t, err)
	require.Equal(t, []Task{
		{Name: `DNS\Get-Servers`, Read: true, Method: "GET", Path: "/api/v1/servers"},
		{Name: `DNS\Delete-Zones-Zone`, Method: "DELETE", Path: "/api/v1/zones/{zone}"},
	}, d.Tasks)
}
