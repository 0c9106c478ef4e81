//go:build e2e

package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run elevate in front of real RabbitMQ and Caddy from Debian
// (test/e2e/install.sh installs them), driven by the programs actors use:
// rabbitmqadmin, curl and the caddy CLI. Without the programs the tests skip,
// except under CI, where they fail.

const (
	rabbitAdminUser = "e2e-admin"
	// rabbitPasswordEnv carries the RabbitMQ admin password to elevate,
	// which injects it; callers never hold it.
	rabbitPasswordEnv = "E2E_RABBITMQ_PASSWORD"
	rabbitHost        = "rabbitmq.elevate.test"
)

// program finds a program: the first candidate path that exists, else name on
// PATH. A missing program skips the test, or fails it under CI.
func program(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; test/e2e/install.sh installs it", name)
	}
	t.Skipf("%s is not installed; run test/e2e/install.sh", name)
	return ""
}

// randHex returns n random bytes in hex.
func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// renderTemplate fills the template testdata/name with data into path.
func renderTemplate(t *testing.T, name, path string, data any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, tmpl.Execute(&b, data))
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
}

// runProgram runs a program to completion, bounded in time.
func runProgram(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	return runCommand(t, cmd)
}

// waitHTTP200 polls url until it answers 200, failing after timeout or when d
// exits first.
func waitHTTP200(t *testing.T, d *background, what, url string, hdr http.Header, timeout time.Duration) {
	t.Helper()
	waitOK(t, d, what, timeout, func() *http.Request {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if hdr != nil {
			req.Header = hdr.Clone()
		}
		return req
	})
}

// waitOK sends the request newReq makes until it is answered 200, failing
// after timeout or when d exits first.
func waitOK(t *testing.T, d *background, what string, timeout time.Duration, newReq func() *http.Request) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if resp, err := client.Do(newReq()); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !d.running() {
			t.Fatalf("%s exited before it was ready:\n%s", what, d.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", what, timeout, d.output())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rabbitMQ is a private RabbitMQ node with the management plugin.
type rabbitMQ struct {
	NodeAddr string // AMQP listener
	MgmtAddr string // management HTTP API
	MgmtPort int
	User     string
	Pass     string

	node     string
	ctl      string
	epmdPort int
	env      []string
	d        *background
}

// startRabbitMQ runs a RabbitMQ node in a temp dir, on free loopback ports,
// with its own Erlang cookie and its own port mapper, and stops it at
// cleanup.
func startRabbitMQ(t *testing.T) *rabbitMQ {
	t.Helper()
	// The scripts under /usr/lib/rabbitmq/bin are used directly: Debian's
	// wrappers on PATH switch to the rabbitmq user and drop the environment.
	server := program(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	ctl := program(t, "rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl")
	dir := t.TempDir()
	ports := freeLoopbackPorts(t, 4)
	r := &rabbitMQ{
		NodeAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		MgmtPort: ports[1],
		MgmtAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		User:     rabbitAdminUser,
		Pass:     "pw-" + randHex(t, 12),
		node:     "rabbit-e2e-" + randHex(t, 4) + "@localhost",
		ctl:      ctl,
		epmdPort: ports[3],
	}
	conf := filepath.Join(dir, "rabbitmq.conf")
	renderTemplate(t, "e2e-rabbitmq.conf.tmpl", conf, r)
	plugins := filepath.Join(dir, "enabled_plugins")
	require.NoError(t, os.WriteFile(plugins, []byte("[rabbitmq_management].\n"), 0o600))
	envFile := filepath.Join(dir, "rabbitmq-env.conf")
	require.NoError(t, os.WriteFile(envFile, nil, 0o600))
	r.env = programEnv(
		"HOME="+dir, // the Erlang cookie goes to $HOME/.erlang.cookie
		"RABBITMQ_CONF_ENV_FILE="+envFile,
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"),
		"RABBITMQ_NODENAME="+r.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(ports[0]),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(ports[2]),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_EPMD_PORT="+strconv.Itoa(r.epmdPort),
	)
	r.d = startBackground(t, r.env, dir, "server.log", server)
	t.Cleanup(func() { r.stop(t) })
	waitHTTP200(t, r.d, "rabbitmq", "http://"+r.MgmtAddr+"/api/overview",
		http.Header{"Authorization": {r.basic()}}, 90*time.Second)
	return r
}

// basic is the Authorization value of the admin credential.
func (r *rabbitMQ) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(r.User+":"+r.Pass))
}

// stop asks the node to stop, then ends what is left: the server's process
// group and the private port mapper.
func (r *rabbitMQ) stop(t *testing.T) {
	if r.d.running() {
		res := runProgram(t, r.env, r.ctl, "-n", r.node, "stop")
		if res.code != 0 {
			t.Logf("rabbitmqctl stop: %s%s", res.stdout, res.stderr)
		}
		if !r.d.wait(30 * time.Second) {
			t.Logf("rabbitmq did not stop in time; killing it")
		}
		r.d.kill()
	}
	if epmd, err := exec.LookPath("epmd"); err == nil {
		_ = runProgram(t, r.env, epmd, "-port", strconv.Itoa(r.epmdPort), "-kill")
	}
}

// api calls the management API directly with the admin credential.
func (r *rabbitMQ) api(t *testing.T, method, path, body string) reply {
	t.Helper()
	return do(t, method, "http://"+r.MgmtAddr+"/api/"+path, "", body, "Authorization", r.basic())
}

// caddyServer is a private Caddy with its admin API and one HTTP server.
type caddyServer struct {
	AdminAddr string
	HTTPAddr  string

	bin string
	dir string
	env []string
	d   *background
}

// startCaddy runs Caddy with its admin API and one HTTP server on free
// loopback ports, and kills it at cleanup.
func startCaddy(t *testing.T) *caddyServer {
	t.Helper()
	c := &caddyServer{bin: program(t, "caddy"), dir: t.TempDir()}
	ports := freeLoopbackPorts(t, 2)
	c.AdminAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	c.env = programEnv("HOME="+c.dir, "XDG_DATA_HOME="+filepath.Join(c.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"))
	cfg := c.configFile(t, "v1")
	c.d = startBackground(t, c.env, c.dir, "caddy.log", c.bin, "run", "--config", cfg)
	t.Cleanup(c.d.kill)
	waitHTTP200(t, c.d, "caddy", "http://"+c.AdminAddr+"/config/", nil, 30*time.Second)
	return c
}

// configFile writes a whole configuration whose HTTP server answers body.
func (c *caddyServer) configFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(c.dir, "caddy-"+body+".json")
	renderTemplate(t, "e2e-caddy.json.tmpl", path, map[string]string{"AdminAddr": c.AdminAddr, "HTTPAddr": c.HTTPAddr, "Body": body})
	return path
}

// body is what the running configuration's HTTP server answers, read from
// the admin API directly.
func (c *caddyServer) body(t *testing.T) string {
	t.Helper()
	rep := do(t, http.MethodGet, "http://"+c.AdminAddr+"/config/apps/http/servers/e2e/routes/0/handle/0/body", "", "")
	require.Equal(t, http.StatusOK, rep.status, string(rep.body))
	var s string
	require.NoError(t, json.Unmarshal(rep.body, &s), string(rep.body))
	return s
}

// startElevateWith runs `elevate serve --dev` with the given upstreams (nil ones
// left out) configured as in the documented example.
func startElevateWith(t *testing.T, rmq *rabbitMQ, cd *caddyServer) *server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	renderTemplate(t, "e2e-elevate.yaml.tmpl", cfg, map[string]any{"RabbitMQ": rmq, "Caddy": cd, "PasswordEnv": rabbitPasswordEnv})
	if rmq != nil {
		// Only the elevate process needs it; it inherits the test's environment.
		t.Setenv(rabbitPasswordEnv, rmq.Pass)
	}
	return startDev(t, "--config", cfg)
}

// actors are the users of one test.
type actors struct {
	admin, approver, bob string
}

// newActors mints the tokens: an admin, an approver and a requester.
func newActors(s *server) actors {
	return actors{
		admin:    s.token("--sub", "ada", "--groups", "admins"),
		approver: s.token("--sub", "cy", "--groups", "approvers"),
		bob:      s.token("--sub", "bob"),
	}
}

// gatedOp is one privileged operation done by a real client.
type gatedOp struct {
	task string
	// method and url are the call as `elevate check` judges it.
	method, url string
	// do runs the client.
	do func(t *testing.T) result
	// done reports whether the effect is visible on the upstream itself.
	done func(t *testing.T) bool
}

// checkAllows reports whether `elevate check` lets who make the call.
func (s *server) checkAllows(who, method, url string) bool {
	s.t.Helper()
	return s.cli(who, "check", method, url).code == 0
}

// walkGated takes op through the approval flow: refused without a grant, allowed
// once a request is approved, refused again after the requester revokes it.
// read is a call that must pass throughout without a grant.
func walkGated(t *testing.T, s *server, p actors, op gatedOp, read func(t *testing.T)) {
	t.Helper()
	refused := func(when string) {
		t.Helper()
		require.Eventually(t, func() bool { return !s.checkAllows(p.bob, op.method, op.url) }, 10*time.Second, 50*time.Millisecond,
			"%s: %s %s still allowed %s", op.task, op.method, op.url, when)
		r := op.do(t)
		require.NotEqual(t, 0, r.code, "%s succeeded %s:\n%s%s", op.task, when, r.stdout, r.stderr)
		require.Contains(t, r.stdout+r.stderr, "403", "%s %s", op.task, when)
	}
	read(t)
	refused("without a grant")
	require.False(t, op.done(t), "%s took effect without a grant", op.task)
	read(t)

	id := s.request(p.bob, "--task", op.task, "--reason", "e2e: "+op.task, "--duration", "10m")
	s.ok(p.approver, "request", "approve", id, "--comment", "ok")
	require.Eventually(t, func() bool { return s.checkAllows(p.bob, op.method, op.url) }, 10*time.Second, 50*time.Millisecond,
		"%s: the approved grant is not in force", op.task)
	r := op.do(t)
	require.Equal(t, 0, r.code, "%s with a grant:\n%s%s", op.task, r.stdout, r.stderr)
	require.Eventually(t, func() bool { return op.done(t) }, 10*time.Second, 50*time.Millisecond, "%s: no effect on the upstream", op.task)
	read(t)

	s.ok(p.bob, "request", "revoke", id, "--comment", "done")
	refused("after the revoke")
	read(t)
}

// rabbitClients are the real clients of TestE2ERabbitMQ, against one
// elevate and one RabbitMQ.
type rabbitClients struct {
	s           *server
	rmq         *rabbitMQ
	admintool   string
	curl        string
	proxy       string
	bob, bearer string
}

// rabbitmqadmin runs rabbitmqadmin in reverse mode as bob: the token is its
// Basic password.
func (c *rabbitClients) rabbitmqadmin(t *testing.T, args ...string) result {
	t.Helper()
	base := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(addrPort(t, c.s.proxyAddr)), "--path-prefix", "/rabbitmq",
		"--username", "elevate", "--password", c.bob}
	return runProgram(t, programEnv(), c.admintool, append(base, args...)...)
}

// listVhosts is a read that needs no grant.
func (c *rabbitClients) listVhosts(t *testing.T) {
	t.Helper()
	r := c.rabbitmqadmin(t, "list", "vhosts")
	require.Equal(t, 0, r.code, "a read without a grant:\n%s%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "| /")
}

// curlJSON runs curl and returns the status and the JSON object answered.
func (c *rabbitClients) curlJSON(t *testing.T, args ...string) (int, map[string]any) {
	t.Helper()
	r := runProgram(t, programEnv(), c.curl, append([]string{"-q", "-sS", "-o", "-", "-w", "\n%{http_code}"}, args...)...)
	require.Equal(t, 0, r.code, r.stderr)
	body, code, _ := splitLast(r.stdout, "\n")
	status, err := strconv.Atoi(code)
	require.NoError(t, err, r.stdout)
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	return status, m
}

// curlFail runs curl with --fail: non-zero exit on any error status.
func (c *rabbitClients) curlFail(t *testing.T, args ...string) result {
	t.Helper()
	return runProgram(t, programEnv(), c.curl, append([]string{"-q", "-sS", "--fail"}, args...)...)
}

// status is the status of a call made directly to RabbitMQ as its admin.
func (c *rabbitClients) status(t *testing.T, method, path string) int {
	t.Helper()
	return c.rmq.api(t, method, path, "").status
}

// TestE2ERabbitMQ drives RabbitMQ's management API through elevate with
// rabbitmqadmin and curl, in reverse and in forward mode.
func TestE2ERabbitMQ(t *testing.T) {
	c := &rabbitClients{admintool: program(t, "rabbitmqadmin"), curl: program(t, "curl")}
	c.rmq = startRabbitMQ(t)
	c.s = startElevateWith(t, c.rmq, nil)
	s, rmq := c.s, c.rmq
	p := newActors(s)
	c.proxy, c.bob, c.bearer = "http://"+s.proxyAddr, p.bob, "Authorization: Bearer "+p.bob
	proxy := c.proxy

	// The same tool straight at RabbitMQ works: the setup is sound.
	direct := runProgram(t, programEnv(), c.admintool, "--host", "127.0.0.1", "--port", strconv.Itoa(rmq.MgmtPort),
		"--username", rmq.User, "--password", rmq.Pass, "list", "vhosts")
	require.Equal(t, 0, direct.code, direct.stderr)
	require.Contains(t, direct.stdout, "| /")

	s.ok(p.admin, "control", "enable", "--approvers", "approvers")
	for _, task := range []string{`RabbitMQ\New-User`, `RabbitMQ\New-VirtualHost`, `RabbitMQ\Set-Permission`, `RabbitMQ\Remove-User`,
		`RabbitMQ\Set-Policy`, `RabbitMQ\Remove-VirtualHost`, `RabbitMQ\Remove-Queue`} {
		s.ok(p.admin, "policy", "new", "--task", task, "--approval", "manual")
	}

	t.Run("rabbitmqadmin", func(t *testing.T) {
		c.listVhosts(t)
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\New-User`, method: "PUT", url: proxy + "/rabbitmq/api/users/carol",
			do: func(t *testing.T) result {
				return c.rabbitmqadmin(t, "declare", "user", "name=carol", "password=x", "tags=")
			},
			done: func(t *testing.T) bool { return c.status(t, "GET", "users/carol") == http.StatusOK },
		}, c.listVhosts)
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\New-VirtualHost`, method: "PUT", url: proxy + "/rabbitmq/api/vhosts/v1",
			do:   func(t *testing.T) result { return c.rabbitmqadmin(t, "declare", "vhost", "name=v1") },
			done: func(t *testing.T) bool { return c.status(t, "GET", "vhosts/v1") == http.StatusOK },
		}, c.listVhosts)
		// The default virtual host "/" travels as %2F, one segment.
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\Set-Permission`, method: "PUT", url: proxy + "/rabbitmq/api/permissions/%2F/carol",
			do: func(t *testing.T) result {
				return c.rabbitmqadmin(t, "declare", "permission", "vhost=/", "user=carol", "configure=.*", "write=.*", "read=.*")
			},
			done: func(t *testing.T) bool { return c.status(t, "GET", "permissions/%2F/carol") == http.StatusOK },
		}, c.listVhosts)
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\Remove-User`, method: "DELETE", url: proxy + "/rabbitmq/api/users/carol",
			do:   func(t *testing.T) result { return c.rabbitmqadmin(t, "delete", "user", "name=carol") },
			done: func(t *testing.T) bool { return c.status(t, "GET", "users/carol") == http.StatusNotFound },
		}, c.listVhosts)
	})

	t.Run("curl reverse", func(t *testing.T) {
		overview := func(t *testing.T) {
			t.Helper()
			code, m := c.curlJSON(t, "-H", c.bearer, proxy+"/rabbitmq/api/overview")
			require.Equal(t, http.StatusOK, code)
			require.NotEmpty(t, m["rabbitmq_version"])
		}
		overview(t)
		policy := `{"pattern":"^e2e\\.","definition":{"max-length":10},"apply-to":"queues"}`
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\Set-Policy`, method: "PUT", url: proxy + "/rabbitmq/api/policies/%2F/e2e-cap",
			do: func(t *testing.T) result {
				return c.curlFail(t, "-X", "PUT", "-H", c.bearer, "-H", "Content-Type: application/json",
					"--data", policy, proxy+"/rabbitmq/api/policies/%2F/e2e-cap")
			},
			done: func(t *testing.T) bool { return c.status(t, "GET", "policies/%2F/e2e-cap") == http.StatusOK },
		}, overview)
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\Remove-VirtualHost`, method: "DELETE", url: proxy + "/rabbitmq/api/vhosts/v1",
			do: func(t *testing.T) result {
				return c.curlFail(t, "-X", "DELETE", "-H", c.bearer, proxy+"/rabbitmq/api/vhosts/v1")
			},
			done: func(t *testing.T) bool { return c.status(t, "GET", "vhosts/v1") == http.StatusNotFound },
		}, overview)
	})

	t.Run("injected credential", func(t *testing.T) {
		// RabbitMQ sees elevate's credential, never the caller's.
		code, m := c.curlJSON(t, "-H", c.bearer, proxy+"/rabbitmq/api/whoami")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, rmq.User, m["name"])
		code, m = c.curlJSON(t, "-H", c.bearer, proxy+"/rabbitmq/api/whoami?access_token=caller-secret")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, rmq.User, m["name"])
		// The token as a Basic password works too, whatever the user name.
		code, m = c.curlJSON(t, "-u", "someone:"+p.bob, proxy+"/rabbitmq/api/whoami")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, rmq.User, m["name"])
		// Without a token elevate answers, and RabbitMQ's own credential is
		// not an elevate token.
		code, _ = c.curlJSON(t, proxy+"/rabbitmq/api/whoami")
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = c.curlJSON(t, "-u", rmq.User+":"+rmq.Pass, proxy+"/rabbitmq/api/whoami")
		require.Equal(t, http.StatusUnauthorized, code)
	})

	t.Run("curl forward HTTPS", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "elevate-ca.pem")
		pemOut := s.ok(p.bob, "ca")
		require.Contains(t, pemOut, "-----BEGIN CERTIFICATE-----")
		require.NoError(t, os.WriteFile(caFile, []byte(pemOut), 0o600))
		proxyHeader := "Proxy-Authorization: Bearer " + p.bob
		viaProxy := programEnv("HTTPS_PROXY=http://" + s.proxyAddr)
		// fwd runs curl and returns the CONNECT status, the final status and
		// the body.
		fwd := func(t *testing.T, env []string, args ...string) (connect, code int, body string, r result) {
			t.Helper()
			r = runProgram(t, env, c.curl, append([]string{"-q", "-sS", "--cacert", caFile, "-o", "-", "-w", "\n%{http_connect} %{http_code}"}, args...)...)
			body, codes, _ := splitLast(r.stdout, "\n")
			_, err := fmt.Sscanf(codes, "%d %d", &connect, &code)
			require.NoError(t, err, "curl %v:\n%s%s", args, r.stdout, r.stderr)
			return connect, code, body, r
		}
		whoamiURL := "https://" + rabbitHost + "/api/whoami"

		// The token in a proxy header.
		connect, code, body, r := fwd(t, viaProxy, "--proxy-header", proxyHeader, whoamiURL)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, http.StatusOK, connect)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"name":"`+rmq.User+`"`)

		// The token as the password in the proxy URL, and an upstream
		// credential of the caller's own, which elevate replaces.
		withCreds := programEnv("https_proxy=http://x:" + p.bob + "@" + s.proxyAddr)
		_, code, body, r = fwd(t, withCreds, "-u", "mallory:guess", whoamiURL)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"name":"`+rmq.User+`"`)
		_, code, body, _ = fwd(t, withCreds, "https://"+rabbitHost+"/api/vhosts")
		require.Equal(t, http.StatusOK, code, body)

		// No token: 407 on CONNECT.
		connect, _, _, r = fwd(t, viaProxy, whoamiURL)
		require.NotEqual(t, 0, r.code)
		require.Equal(t, http.StatusProxyAuthRequired, connect)

		// A privileged call inside the tunnel goes through the same gate.
		require.Equal(t, http.StatusCreated, rmq.api(t, "PUT", "queues/%2F/e2e.q", `{"durable":false}`).status)
		walkGated(t, s, p, gatedOp{
			task: `RabbitMQ\Remove-Queue`, method: "DELETE", url: proxy + "/rabbitmq/api/queues/%2F/e2e.q",
			do: func(t *testing.T) result {
				_, _, _, r := fwd(t, viaProxy, "--fail", "--proxy-header", proxyHeader, "-X", "DELETE", "https://"+rabbitHost+"/api/queues/%2F/e2e.q")
				return r
			},
			done: func(t *testing.T) bool { return c.status(t, "GET", "queues/%2F/e2e.q") == http.StatusNotFound },
		}, func(t *testing.T) {
			t.Helper()
			_, code, body, _ := fwd(t, viaProxy, "--proxy-header", proxyHeader, "https://"+rabbitHost+"/api/overview")
			require.Equal(t, http.StatusOK, code, body)
		})

		// Plain HTTP in absolute form reaches a configured host too.
		_, code, body, _ = fwd(t, programEnv(), "-x", "http://"+s.proxyAddr, "--proxy-header", proxyHeader, "http://"+rabbitHost+"/api/overview")
		require.Equal(t, http.StatusOK, code, body)

		// elevate is no open proxy: other hosts are refused and audited.
		connect, _, _, r = fwd(t, viaProxy, "--proxy-header", proxyHeader, "https://example.invalid/")
		require.NotEqual(t, 0, r.code)
		require.Equal(t, http.StatusForbidden, connect)
		_, code, _, _ = fwd(t, programEnv(), "-x", "http://"+s.proxyAddr, "--proxy-header", proxyHeader, "http://example.invalid/")
		require.Equal(t, http.StatusForbidden, code)
		require.Eventually(t, func() bool {
			methods := map[string]bool{}
			for _, rec := range s.auditRecords() {
				if rec["host"] == "example.invalid" && rec["event"] == "denied" {
					m, _ := rec["method"].(string)
					methods[m] = true
				}
			}
			return methods["CONNECT"] && methods["GET"]
		}, 5*time.Second, 50*time.Millisecond, "refusals of example.invalid are audited")
	})
}

// TestE2ECaddy drives Caddy's admin API through `elevate connect` with the
// caddy CLI, which can neither send a token nor use a proxy.
func TestE2ECaddy(t *testing.T) {
	curl := program(t, "curl")
	cd := startCaddy(t)
	s := startElevateWith(t, nil, cd)
	p := newActors(s)
	proxy := "http://" + s.proxyAddr

	// elevate connect, as bob.
	local := freeAddr(t)
	conn := startBackground(t, programEnv("ELEVATE_SERVER=http://"+s.controlAddr, "ELEVATE_TOKEN="+p.bob), t.TempDir(), "connect.log",
		binary, "connect", "caddy", "--listen", local)
	t.Cleanup(conn.kill)
	waitHTTP200(t, conn, "elevate connect", "http://"+local+"/config/", nil, 30*time.Second)

	readConfig := func(t *testing.T) {
		t.Helper()
		r := runProgram(t, programEnv(), curl, "-q", "-sS", "--fail", "http://"+local+"/config/")
		require.Equal(t, 0, r.code, "a read without a grant: %s", r.stderr)
		require.Contains(t, r.stdout, `"admin"`)
	}
	readConfig(t)
	require.Equal(t, "v1", cd.body(t))

	s.ok(p.admin, "control", "enable", "--approvers", "approvers")
	s.ok(p.admin, "policy", "new", "--task", `Caddy\Load-Config`, "--approval", "manual")
	s.ok(p.admin, "policy", "new", "--task", `Caddy\Stop-Server`, "--approval", "manual")

	// Each reload loads a configuration of its own, so that its effect shows.
	n, want := 1, ""
	walkGated(t, s, p, gatedOp{
		task: `Caddy\Load-Config`, method: "POST", url: proxy + "/caddy/load",
		do: func(t *testing.T) result {
			n++
			want = "v" + strconv.Itoa(n)
			return runProgram(t, cd.env, cd.bin, "reload", "--address", local, "--config", cd.configFile(t, want))
		},
		done: func(t *testing.T) bool { return cd.body(t) == want },
	}, readConfig)
	require.Equal(t, "v3", cd.body(t), "the reload after the revoke changed nothing")
	rep := do(t, http.MethodGet, "http://"+cd.HTTPAddr+"/", "", "")
	require.Equal(t, "v3", string(rep.body), "the reloaded server answers")

	walkGated(t, s, p, gatedOp{
		task: `Caddy\Stop-Server`, method: "POST", url: proxy + "/caddy/stop",
		do:   func(t *testing.T) result { return runProgram(t, cd.env, cd.bin, "stop", "--address", local) },
		done: func(*testing.T) bool { return !cd.d.running() },
	}, func(t *testing.T) {
		t.Helper()
		if cd.d.running() {
			readConfig(t)
		}
	})
}

// addrPort returns the port of a host:port address.
func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// splitLast splits s around the last sep.
func splitLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
