package kubetest

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenFileAndKeys(t *testing.T) {
	dir := t.TempDir()
	a, err := Token()
	require.NoError(t, err)
	b, err := Token()
	require.NoError(t, err)
	require.Len(t, a, 48)
	require.NotEqual(t, a, b)

	f := filepath.Join(dir, "tokens.csv")
	require.NoError(t, WriteTokenFile(f, []User{{Token: a, Name: "root", Groups: []string{"system:masters", "ops"}}, {Token: b, Name: "alice"}}))
	got, err := os.ReadFile(f)
	require.NoError(t, err)
	require.Equal(t, a+",root,root,\"system:masters,ops\"\n"+b+",alice,alice\n", string(got))

	pub, priv, err := WriteServiceAccountKeys(dir)
	require.NoError(t, err)
	for file, typ := range map[string]string{pub: "PUBLIC KEY", priv: "PRIVATE KEY"} {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		blk, _ := pem.Decode(raw)
		require.NotNil(t, blk, file)
		require.Equal(t, typ, blk.Type)
	}
}

func TestAPIServerArgs(t *testing.T) {
	s := APIServer{EtcdURL: "http://127.0.0.1:1", TokenFile: "t.csv", SAPublic: "sa.pub", SAPrivate: "sa.key",
		CertFile: "c.crt", KeyFile: "c.key", CertDir: "certs"}
	args := strings.Join(s.Args(6443), " ")
	for _, want := range []string{"--secure-port=6443", "--bind-address=127.0.0.1", "--authorization-mode=RBAC",
		"--token-auth-file=t.csv", "--service-account-signing-key-file=sa.key", "--tls-cert-file=c.crt", "--etcd-servers=http://127.0.0.1:1"} {
		require.Contains(t, args, want)
	}
	require.NotContains(t, args, "--etcd-prefix", "the default prefix unless one is given")
	s.EtcdPrefix = "/registry-x"
	require.Contains(t, s.Args(6443), "--etcd-prefix=/registry-x")
}

func TestImpersonatorManifest(t *testing.T) {
	m := ImpersonatorManifest("elevate-proxy")
	require.True(t, strings.HasPrefix(m, "---\n"))
	require.Equal(t, 2, strings.Count(m, "---\n"), "a role and its binding")
	require.Contains(t, m, "kind: User, name: elevate-proxy}")
	require.Contains(t, m, "verbs: [impersonate]")
	require.NotContains(t, m, "verbs: [get", "impersonation and nothing else")
}
