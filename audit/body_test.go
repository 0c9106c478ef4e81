package audit_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
)

// TestBodyHMAC: a body digest is the documented HMAC-SHA-256 under the
// configured key, from a file or the environment; equal bodies match,
// others do not; without a key there is none.
func TestBodyHMAC(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef-test-key"
	want := func(body string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(body))
		return hex.EncodeToString(m.Sum(nil))
	}
	keyFile := filepath.Join(t.TempDir(), "body.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("  "+key+"\n"), 0o600))
	t.Setenv("ELEVATE_TEST_BODY_KEY", key)

	for _, tc := range []struct {
		desc string
		cfg  audit.Config
	}{
		{"key from a file, white space trimmed", audit.Config{BodyKeyFile: keyFile}},
		{"key from the environment", audit.Config{BodyKeyEnv: "ELEVATE_TEST_BODY_KEY"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.cfg.Path = logPath(t)
			l := open(t, tc.cfg)
			body := `{"jsonrpc":"2.0","method":"aria2.shutdown","id":1}`
			require.Equal(t, want(body), l.BodyHMAC([]byte(body)))
			require.Equal(t, l.BodyHMAC([]byte(body)), l.BodyHMAC([]byte(body)), "equal bodies match")
			require.NotEqual(t, l.BodyHMAC([]byte(body)), l.BodyHMAC([]byte(body+" ")), "any other byte does not")
		})
	}

	t.Run("no key, no digest", func(t *testing.T) {
		l := open(t, audit.Config{Path: logPath(t)})
		require.Empty(t, l.BodyHMAC([]byte("{}")))
	})

	short := filepath.Join(t.TempDir(), "short.key")
	require.NoError(t, os.WriteFile(short, []byte("too-short\n"), 0o600))
	t.Setenv("ELEVATE_TEST_EMPTY_KEY", "")
	for _, tc := range []struct {
		desc string
		cfg  audit.Config
		want string
	}{
		{"a missing key file", audit.Config{BodyKeyFile: filepath.Join(t.TempDir(), "none")}, "audit.body_key_file: "},
		{"a short key", audit.Config{BodyKeyFile: short}, "audit.body_key_file: " + short + ": the key must hold at least 32 characters, it holds 9"},
		{"an empty variable", audit.Config{BodyKeyEnv: "ELEVATE_TEST_EMPTY_KEY"}, "audit.body_key_env: ELEVATE_TEST_EMPTY_KEY: the key must hold at least 32"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.cfg.Path = logPath(t)
			_, err := audit.Open(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestCreateBodyKey: the key elevate serve --dev keeps is made once,
// private, and is a key Open accepts.
func TestCreateBodyKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "audit-body.key")
	require.NoError(t, audit.CreateBodyKey(path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Regexp(t, `^[0-9a-f]{64}\n$`, string(first))

	require.NoError(t, audit.CreateBodyKey(path))
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, first, again, "an existing key is kept")

	l := open(t, audit.Config{Path: logPath(t), BodyKeyFile: path})
	m := hmac.New(sha256.New, []byte(strings.TrimSpace(string(first))))
	m.Write([]byte("{}"))
	require.Equal(t, hex.EncodeToString(m.Sum(nil)), l.BodyHMAC([]byte("{}")))
}

// TestRecordOfAJudgedBody: the fields of a body-judged call come back
// from Query as written, and the chain covers them.
func TestRecordOfAJudgedBody(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	ctx := context.Background()
	rec := audit.Record{Kind: audit.KindCall, Event: audit.EventGrantRequired, Upstream: "aria2", Method: "POST", Path: "/jsonrpc",
		Query: "tid=7&verbose", Task: `Aria2\Shutdown`, BodyHMAC: strings.Repeat("ab", 32),
		Operations: []audit.Operation{
			{Name: "aria2.tellActive", Task: `Aria2\Get-Active`, Outcome: "allow"},
			{Name: "aria2.shutdown", Task: `Aria2\Shutdown`, Outcome: "grant_required", Fields: map[string]json.RawMessage{"id": json.RawMessage(`7`)}},
		},
		Fields: map[string]json.RawMessage{"zone": json.RawMessage(`"example.org."`)},
	}
	_, err := l.Write(ctx, rec)
	require.NoError(t, err)
	page, err := l.Query(ctx, audit.Filter{Upstream: "aria2"})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	got := page.Records[0]
	require.Equal(t, rec.Query, got.Query)
	require.Equal(t, rec.Operations, got.Operations)
	require.Equal(t, rec.Fields, got.Fields)
	require.Equal(t, rec.BodyHMAC, got.BodyHMAC)
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Records)

	// The new members are left out of records that do not have them.
	_, err = l.Write(ctx, call("allowed", "alice"))
	require.NoError(t, err)
	lines := readLines(t, path)
	for _, k := range []string{`"query"`, `"operations"`, `"body_hmac"`, `"fields"`} {
		require.NotContains(t, string(lines[1]), k)
	}
}
