package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// The CLI's tests run the command tree in process (run) against
// `elevate serve --dev`, also run in process: embedded etcd, the dev issuer,
// the demo upstream and the real side API.

// devServer is one `elevate serve --dev` running in this process.
type devServer struct {
	dataDir  string
	control  string // the control listener's URL
	proxy    string // the proxy listener's URL
	stdout   *syncBuffer
	stderr   *syncBuffer // its log
	cancel   context.CancelFunc
	done     chan int
	stopOnce sync.Once
}

// startServe runs `elevate serve --dev` on free ports in dataDir, with
// config (YAML) when not empty, and waits for its banner. A port taken
// between choosing and binding it is chosen again.
func startServe(dataDir, config string) (*devServer, error) {
	args := []string{"--data-dir", dataDir}
	if config != "" {
		f := filepath.Join(dataDir, "config.yaml")
		if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--config", f)
	}
	return startServeWith(dataDir, args)
}

// startServeWith runs `elevate serve --dev` with args, whose data
// directory is dataDir.
func startServeWith(dataDir string, args []string) (*devServer, error) {
	for attempt := 1; ; attempt++ {
		s, err := tryServe(dataDir, args)
		if err == nil || !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			return s, err
		}
	}
}

func tryServe(dataDir string, extra []string) (*devServer, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--dev", "--proxy-addr", addrs[0], "--control-addr", addrs[1]}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	s := &devServer{dataDir: dataDir, stdout: &syncBuffer{}, stderr: stderr, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- run(ctx, args, s.stdout, stderr) }()
	listeners := regexp.MustCompile(`(?m)^\s+proxy\s+(http://\S+).*\n\s+control\s+(http://\S+)`)
	deadline := time.After(60 * time.Second)
	for {
		if m := listeners.FindStringSubmatch(s.stdout.String()); m != nil {
			s.proxy, s.control = m[1], m[2]
			return s, nil
		}
		select {
		case code := <-s.done:
			cancel()
			return nil, fmt.Errorf("serve --dev exited %d: %s", code, stderr.String())
		case <-deadline:
			s.stop()
			return nil, fmt.Errorf("serve --dev printed no banner: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeAddrs returns n different loopback addresses that were free.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so that they differ
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// stop ends the server and waits for it, once.
func (s *devServer) stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
		}
	})
}

// newDevServer starts a server of the test's own, stopped at its end.
func newDevServer(t *testing.T, config string) *devServer {
	t.Helper()
	s, err := startServe(t.TempDir(), config)
	require.NoError(t, err)
	t.Cleanup(s.stop)
	return s
}

// token signs a dev token; groups after sub, and mfa when the last is "+mfa".
func (s *devServer) token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	return s.tokenAt(t, time.Now(), time.Hour, sub, groups...)
}

func (s *devServer) tokenAt(t *testing.T, now time.Time, ttl time.Duration, sub string, groups ...string) string {
	t.Helper()
	dev, err := identity.LoadDevIssuer(s.dataDir)
	require.NoError(t, err)
	mfa := len(groups) > 0 && groups[len(groups)-1] == "+mfa"
	if mfa {
		groups = groups[:len(groups)-1]
	}
	tok, err := dev.Sign(identity.DevToken{Subject: sub, Groups: groups, MFA: mfa, TTL: ttl, Now: now})
	require.NoError(t, err)
	return tok
}

// cliResult is what one run of the CLI left.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in process with the environment as the test set it.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	code := run(ctx, args, &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// as runs the CLI against s with token.
func (s *devServer) as(t *testing.T, token string, args ...string) cliResult {
	t.Helper()
	return runCLI(t, append([]string{"--server", s.control, "--token", token}, args...)...)
}

// ok runs the CLI against s and requires exit 0.
func (s *devServer) ok(t *testing.T, token string, args ...string) string {
	t.Helper()
	r := s.as(t, token, args...)
	require.Equal(t, 0, r.code, "elevate %v: %s", args, r.stderr)
	return r.stdout
}

// oneLineOf requires stderr to be one line and returns it.
func oneLineOf(t *testing.T, stderr string) string {
	t.Helper()
	require.NotEmpty(t, stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "one line on stderr: %q", stderr)
	return stderr
}

// commands lists every command of the tree, the root included, as the
// arguments that reach it.
func commands(c *cobra.Command, path []string) [][]string {
	out := [][]string{path}
	for _, sub := range c.Commands() {
		out = append(out, commands(sub, append(append([]string{}, path...), sub.Name()))...)
	}
	return out
}

// TestHelpShowsNoEnvironmentValue: flags whose value may come from the
// environment name the variable in help and never show its value; a token
// in ELEVATE_TOKEN is a secret.
func TestHelpShowsNoEnvironmentValue(t *testing.T) {
	const marker = "SECRET-MARKER-8d1f"
	for _, env := range []string{"ELEVATE_TOKEN", "ELEVATE_SERVER", "ELEVATE_CA_FILE", "ELEVATE_DATA_DIR"} {
		t.Setenv(env, marker+"-"+env)
	}
	r := runCLI(t, "whoami", "--help")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "env ELEVATE_TOKEN")
	require.Contains(t, r.stdout, "env ELEVATE_SERVER")
	require.NotContains(t, r.stdout+r.stderr, marker)

	for _, path := range commands(rootCmd(), nil) {
		for _, args := range [][]string{append(path, "--help"), append([]string{"help"}, path...)} {
			r := runCLI(t, args...)
			require.Equal(t, 0, r.code, "elevate %v: %s", args, r.stderr)
			require.NotContains(t, r.stdout+r.stderr, marker, "elevate %v shows an environment value", args)
		}
	}
	r = runCLI(t, "token", "--help")
	require.Contains(t, r.stdout, "env ELEVATE_DATA_DIR")
}

// TestUsageErrorsExit2: a mistyped command, a wrong number of arguments, an
// unknown flag or a bad flag value exits 2 with one line that says what
// was wrong, and suggests the command meant.
func TestUsageErrorsExit2(t *testing.T) {
	// Nothing listens here: none of these may reach a server.
	t.Setenv("ELEVATE_SERVER", "http://"+closedAddr(t))
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"a mistyped subcommand", []string{"request", "aprove", "req-1"}, `did you mean "approve"?`},
		{"a mistyped subcommand with flags", []string{"request", "aprove", "req-1", "--comment", "ok"}, `did you mean "approve"?`},
		{"a mistyped command", []string{"reqest", "list"}, `did you mean "request"?`},
		{"a mistyped deeper command", []string{"audit", "qurey"}, `did you mean "query"?`},
		{"an unknown command", []string{"policy", "frobnicate"}, `unknown command "frobnicate" for "elevate policy"`},
		{"a group without its subcommand", []string{"request"}, "elevate request: a command is required"},
		{"the root without a command", nil, "elevate: a command is required"},
		{"help on an unknown command", []string{"help", "request", "aprove"}, `did you mean "approve"?`},
		{"a missing argument", []string{"request", "get"}, "elevate request get: accepts 1 arg(s), received 0"},
		{"an extra argument", []string{"whoami", "me"}, `unknown command "me" for "elevate whoami"`},
		{"an extra argument to check", []string{"check", "GET", "http://x/", "y"}, "accepts 2 arg(s), received 3"},
		{"an unknown flag", []string{"whoami", "--frobnicate"}, "unknown flag: --frobnicate"},
		{"a flag without its value", []string{"request", "list", "--status"}, "flag needs an argument"},
		{"a bad output format", []string{"-o", "yaml", "whoami"}, "-o: must be table or json"},
		{"a bad duration", []string{"token", "--sub", "x", "--ttl", "forever"}, "--ttl"},
		{"a missing required flag", []string{"token"}, "--sub: required"},
		{"a blank reason", []string{"request", "new", "--task", "T", "--reason", " "}, "--reason: required"},
		{"no target", []string{"request", "new", "--reason", "r"}, "exactly one of --task, --role, --role-group"},
		{"a bad start time", []string{"request", "new", "--task", "T", "--reason", "r", "--start", "tomorrow"}, "--start"},
		{"--all with --cursor", []string{"audit", "query", "--all", "--cursor", "c"}, "--all and --cursor"},
		{"a server that is no URL", []string{"--server", "ftp://x", "whoami"}, "--server"},
		{"request create without a target", []string{"request", "create", "--reason", "r"}, "exactly one of --task, --role, --role-group"},
		{"policy new with a bad approval", []string{"policy", "new", "--task", "T", "--approval", "sometimes"}, "--approval: must be manual or auto"},
		{"policy create with a bad approval", []string{"policy", "create", "--task", "T", "--approval", "sometimes"}, "--approval: must be manual or auto"},
		{"policy delete without its id", []string{"policy", "delete"}, "elevate policy delete: accepts 1 arg(s), received 0"},
		{"policy rm without its id", []string{"policy", "rm"}, "elevate policy delete: accepts 1 arg(s), received 0"},
		{"policy rm with two ids", []string{"policy", "rm", "a", "b"}, "accepts 1 arg(s), received 2"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			require.Equal(t, 2, r.code, "elevate %v: %s%s", tc.args, r.stdout, r.stderr)
			require.Contains(t, oneLineOf(t, r.stderr), tc.want)
			require.Empty(t, r.stdout)
		})
	}
}

// TestVerbAliases: create and delete are the verbs help shows; new and rm,
// the verbs of earlier releases, do the same.
func TestVerbAliases(t *testing.T) {
	for _, tc := range []struct {
		group, verb, alias string
	}{{"request", "create", "new"}, {"policy", "create", "new"}, {"policy", "delete", "rm"}} {
		r := runCLI(t, tc.group, "--help")
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^\s+`+tc.verb+`\s`, r.stdout, "elevate %s --help lists %s", tc.group, tc.verb)
		require.NotRegexp(t, `(?m)^\s+`+tc.alias+`\s`, r.stdout, "elevate %s --help lists %s only as an alias", tc.group, tc.alias)
		for _, args := range [][]string{{tc.group, tc.verb, "--help"}, {tc.group, tc.alias, "--help"}, {"help", tc.group, tc.alias}} {
			r := runCLI(t, args...)
			require.Equal(t, 0, r.code, "elevate %v: %s", args, r.stderr)
			require.Contains(t, r.stdout, "Aliases:\n  "+tc.verb+", "+tc.alias, "elevate %v", args)
			require.Contains(t, r.stdout, "elevate "+tc.group+" "+tc.verb+" ", "elevate %v shows the primary verb", args)
		}
	}

	s := newDevServer(t, "")
	admin := s.token(t, "verb-ada", "admins", "approvers")
	user := s.token(t, "verb-bob")
	s.ok(t, admin, "control", "enable", "--approvers", "approvers")
	policyID := func(out string) string {
		var p struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &p), out)
		require.NotEmpty(t, p.ID)
		return p.ID
	}
	move := policyID(s.ok(t, admin, "-o", "json", "policy", "create", "--task", `Exchange\New-MoveRequest`, "--approval", "manual"))
	search := policyID(s.ok(t, admin, "-o", "json", "policy", "new", "--task", `Exchange\Search-Mailbox`, "--approval", "manual"))

	for verb, task := range map[string]string{"create": `Exchange\New-MoveRequest`, "new": `Exchange\Search-Mailbox`} {
		var r cliResult
		require.Eventually(t, func() bool {
			r = s.as(t, user, "request", verb, "--task", task, "--reason", "verb "+verb, "-q")
			return r.code == 0
		}, 10*time.Second, 20*time.Millisecond, "request %s: %s", verb, r.stderr)
		id := strings.TrimSpace(r.stdout)
		got := s.ok(t, user, "request", "get", id)
		require.Contains(t, got, task)
		require.Regexp(t, `status:\s+pending`, got)
	}

	for verb, id := range map[string]string{"delete": move, "rm": search} {
		s.ok(t, admin, "policy", verb, id)
		r := s.as(t, admin, "policy", "get", id)
		require.Equal(t, 1, r.code, "policy %s %s left the policy", verb, id)
		require.Contains(t, oneLineOf(t, r.stderr), "404")
	}
}

// TestRootHelpDocumentsExitCodes: `elevate --help` says what each exit
// status means.
func TestRootHelpDocumentsExitCodes(t *testing.T) {
	r := runCLI(t, "--help")
	require.Equal(t, 0, r.code)
	for _, want := range []string{"Exit status", "0  ", "1  ", "2  ", "3  ", "ELEVATE_DATA_DIR", "ELEVATE_TOKEN"} {
		require.Contains(t, r.stdout, want)
	}
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	addrs, err := freeAddrs(1)
	require.NoError(t, err)
	return addrs[0]
}

// TestExitCodesAgainstServer: 0 done, 1 refused or failed as asked, 3
// cannot reach or authenticate to the server; each with one line on
// stderr.
func TestExitCodesAgainstServer(t *testing.T) {
	s := newDevServer(t, "")
	admin := s.token(t, "exit-ada", "admins", "approvers")
	user := s.token(t, "exit-bob")

	require.Contains(t, s.ok(t, user, "whoami"), "exit-bob")

	// 1: the server refused what was asked.
	r := s.as(t, user, "control", "enable")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "403")
	r = s.as(t, user, "request", "get", "req-none")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "404")

	// 1: check says the call would be refused.
	s.ok(t, admin, "control", "enable", "--approvers", "approvers")
	s.ok(t, admin, "policy", "new", "--task", `Exchange\Remove-JournalRule`, "--approval", "manual")
	require.Eventually(t, func() bool {
		return s.as(t, user, "check", "DELETE", s.proxy+"/exchange/journal-rules/j1").code == 1
	}, 10*time.Second, 20*time.Millisecond)
	r = s.as(t, user, "check", "DELETE", s.proxy+"/exchange/journal-rules/j1")
	require.Contains(t, oneLineOf(t, r.stderr), "would be refused")
	require.Equal(t, 0, s.as(t, user, "check", "GET", s.proxy+"/exchange/mailboxes").code)

	// 3: nothing listens.
	r = runCLI(t, "--server", "http://"+closedAddr(t), "--token", user, "whoami")
	require.Equal(t, 3, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "cannot reach")

	// 3: no token, or one the server refuses.
	r = s.as(t, "", "request", "list")
	require.Equal(t, 3, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "401")
	require.Contains(t, r.stderr, "ELEVATE_TOKEN")
	other, err := identity.LoadOrCreateDevIssuer(t.TempDir())
	require.NoError(t, err)
	forged, err := other.Sign(identity.DevToken{Subject: "exit-bob", TTL: time.Hour})
	require.NoError(t, err)
	r = s.as(t, forged, "whoami")
	require.Equal(t, 3, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "401")
	r = s.as(t, "", "connect", "exchange")
	require.Equal(t, 3, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "ELEVATE_TOKEN")
}

// TestExpiredToken: an expired token is refused with exit 3 and a line
// that says it expired, when, and how to get a new one.
func TestExpiredToken(t *testing.T) {
	s := newDevServer(t, "")
	issued := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	expired := s.tokenAt(t, issued, time.Hour, "exp-bob")
	for _, args := range [][]string{{"whoami"}, {"request", "list"}, {"check", "GET", s.proxy + "/exchange/mailboxes"}} {
		r := s.as(t, expired, args...)
		require.Equal(t, 3, r.code, "elevate %v: %s", args, r.stderr)
		line := oneLineOf(t, r.stderr)
		require.Contains(t, line, "expired at "+issued.Add(time.Hour).UTC().Format(time.RFC3339))
		require.Contains(t, line, "elevate token --sub exp-bob")
		require.Contains(t, line, "identity provider")
	}
}

// TestAuditQueryAll: --all pages within the side API's rate limit,
// waiting as Retry-After says; rows appear as pages arrive, and what was
// printed stays when a later page fails.
func TestAuditQueryAll(t *testing.T) {
	s := newDevServer(t, "api: {rate_limit: 2, rate_burst: 1}\n")
	auditor := s.token(t, "carol", "auditors")
	pager := s.token(t, "pager")
	const calls = 12
	for i := range calls {
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/exchange/mailboxes/m%d", s.proxy, i), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+pager)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	query := []string{"audit", "query", "--subject", "pager", "--decision", "allowed", "--all", "--limit", "4"}

	// Every page, in order (newest first), though most calls meet the
	// limit first.
	r := s.as(t, auditor, append([]string{"-o", "json"}, query...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var page struct {
		Records []audit.Record `json:"records"`
		Next    *string        `json:"next"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	require.Len(t, page.Records, calls)
	require.NotNil(t, page.Next)
	require.Empty(t, *page.Next)
	for i, rec := range page.Records {
		require.Equal(t, fmt.Sprintf("/mailboxes/m%d", calls-1-i), rec.Path, "record %d", i)
	}
	r = s.as(t, auditor, query...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, calls, strings.Count(r.stdout, "/mailboxes/m"))
	require.Equal(t, 1, strings.Count(r.stdout, "TIME"), "one header")
	r = s.as(t, auditor, "-o", "json", "audit", "query", "--decision", "api.rate_limited", "--subject", "carol")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	require.NotEmpty(t, page.Records, "the test met the rate limit")

	// The server goes away while pages are being read: the records
	// already printed stay, in JSON that still parses, with the cursor to
	// go on from; the exit says the server could not be reached.
	out := &syncBuffer{}
	errb := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		args := append([]string{"--server", s.control, "--token", auditor, "-o", "json"}, query...)
		args[len(args)-1] = "1"
		done <- run(context.Background(), args, out, errb)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "/mailboxes/m") }, 30*time.Second, 10*time.Millisecond,
		"the first page is printed before the last is read")
	s.stop()
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		t.Fatal("audit query did not end")
	}
	require.Equal(t, 3, code, errb.String())
	page.Records, page.Next = nil, nil
	require.NoError(t, json.Unmarshal([]byte(out.String()), &page), out.String())
	require.NotEmpty(t, page.Records)
	require.Less(t, len(page.Records), calls)
	require.NotNil(t, page.Next)
	require.NotEmpty(t, *page.Next)
	require.Contains(t, oneLineOf(t, errb.String()), "--cursor "+*page.Next)
}

// TestOutputs: JSON is snake_case and not HTML-escaped everywhere; tables
// show policies' rules and a pending request's start, and times in UTC.
func TestOutputs(t *testing.T) {
	s := newDevServer(t, "")
	admin := s.token(t, "out-ada", "admins", "approvers")
	user := s.token(t, "out-bob", "+mfa")
	s.ok(t, admin, "control", "enable", "--approvers", "approvers")

	// policy get and list show every rule.
	var p struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, admin, "-o", "json", "policy", "new", "--task", `Exchange\New-MoveRequest`, "--approval", "manual",
		"--max-uses", "3", "--min-reason-length", "7", "--reason-pattern", "^CHG-[0-9]+", "--require-mfa", "--require-requester-mfa", "--max-duration", "2h")), &p))
	got := s.ok(t, admin, "policy", "get", p.ID)
	for _, want := range []string{"max uses:", "3", "min reason length:", "7", "reason pattern:", "^CHG-[0-9]+",
		"approver mfa:", "requester mfa:", "true", "max duration:", "2h0m0s", "created:"} {
		require.Contains(t, got, want)
	}
	var list string
	require.Eventually(t, func() bool {
		list = s.ok(t, admin, "policy", "list")
		return strings.Contains(list, p.ID)
	}, 10*time.Second, 20*time.Millisecond)
	for _, want := range []string{"MAX USES", "REASON", "MFA", "min 7 chars, matches ^CHG-[0-9]+", "approvers,requester"} {
		require.Contains(t, list, want)
	}

	// A pending request shows when its grant would start, in UTC.
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var req struct {
		ID string `json:"id"`
	}
	reqJSON := s.ok(t, user, "-o", "json", "request", "new", "--task", `Exchange\New-MoveRequest`, "--reason", "CHG-1 <move> & 'copy'",
		"--start", start.Format(time.RFC3339), "--duration", "30m")
	require.NoError(t, json.Unmarshal([]byte(reqJSON), &req))
	require.Contains(t, reqJSON, `"CHG-1 <move> & 'copy'"`, "CLI JSON is not HTML-escaped")
	got = s.ok(t, user, "request", "get", req.ID)
	require.Contains(t, got, start.Format("2006-01-02T15:04:05Z"))
	require.Regexp(t, `created:\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`, got)
	require.Contains(t, s.ok(t, user, "whoami"), "Z\n")

	// The side API does not HTML-escape either.
	resp := rawGet(t, s.control+"/v1/requests/"+req.ID, user)
	require.Contains(t, resp, `CHG-1 <move> & 'copy'`)

	// The 403 body's command can be pasted as it is.
	body := rawDo(t, "POST", s.proxy+"/exchange/mailboxes/alice/move-requests", s.token(t, "out-dan", "+mfa"))
	require.Contains(t, body, `--reason '<why>'`)

	// audit verify -o json is snake_case.
	dir := t.TempDir()
	l, err := audit.Open(audit.Config{Path: filepath.Join(dir, "audit.log")})
	require.NoError(t, err)
	_, err = l.Write(context.Background(), audit.Record{Kind: "call", Event: "allowed", Time: time.Now(), Subject: "x"})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	r := runCLI(t, "-o", "json", "audit", "verify", "--data-dir", dir)
	require.Equal(t, 0, r.code, r.stderr)
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	require.Equal(t, float64(1), rep["records"])
	require.Equal(t, float64(1), rep["files"])
	require.Len(t, rep["last_hash"], 64)
	require.Len(t, rep, 3)
}

func rawGet(t *testing.T, url, token string) string {
	t.Helper()
	return rawDo(t, "GET", url, token)
}

func rawDo(t *testing.T, method, url, token string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestDataDirFromEnvironment: ELEVATE_DATA_DIR is the data directory of
// every command that has --data-dir, from any working directory; without
// one, audit verify says what to do.
func TestDataDirFromEnvironment(t *testing.T) {
	s := newDevServer(t, "")
	t.Chdir(t.TempDir())

	r := runCLI(t, "audit", "verify")
	require.Equal(t, 1, r.code)
	line := oneLineOf(t, r.stderr)
	for _, want := range []string{".elevate", "ELEVATE_DATA_DIR", "--data-dir", "elevate audit verify FILE"} {
		require.Contains(t, line, want)
	}
	r = runCLI(t, "token", "--sub", "x")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "ELEVATE_DATA_DIR")

	t.Setenv("ELEVATE_DATA_DIR", s.dataDir)
	t.Setenv("ELEVATE_SERVER", s.control)
	r = runCLI(t, "token", "--sub", "env-bob")
	require.Equal(t, 0, r.code, r.stderr)
	t.Setenv("ELEVATE_TOKEN", strings.TrimSpace(r.stdout))
	require.Contains(t, runCLI(t, "whoami").stdout, "env-bob")
	r = runCLI(t, "audit", "verify")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "chain intact")
	r = runCLI(t, "ca")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "BEGIN CERTIFICATE")

	// The command line wins over the environment.
	r = runCLI(t, "token", "--sub", "x", "--data-dir", t.TempDir())
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no dev issuer key")

	// The banner names the data directory absolutely, for any directory.
	abs, err := filepath.Abs(s.dataDir)
	require.NoError(t, err)
	require.Contains(t, s.stdout.String(), "ELEVATE_DATA_DIR="+abs)
}

// TestServeDataDirFromEnvironment: serve takes its data directory from
// --data-dir, else the config file's data_dir, else ELEVATE_DATA_DIR.
func TestServeDataDirFromEnvironment(t *testing.T) {
	envDir, fileDir := t.TempDir(), t.TempDir()
	t.Setenv("ELEVATE_DATA_DIR", envDir)
	t.Chdir(t.TempDir())

	s, err := startServeWith(envDir, nil)
	require.NoError(t, err)
	s.stop()
	require.FileExists(t, filepath.Join(envDir, identity.DevKeyFile))
	require.Contains(t, s.stdout.String(), "ELEVATE_DATA_DIR="+envDir)

	// The file is explicit; the environment is not.
	config := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(config, []byte("data_dir: "+fileDir+"\n"), 0o600))
	s, err = startServeWith(fileDir, []string{"--config", config})
	require.NoError(t, err)
	s.stop()
	require.FileExists(t, filepath.Join(fileDir, identity.DevKeyFile))
	require.Contains(t, s.stdout.String(), "ELEVATE_DATA_DIR="+fileDir)
}
