// Package kubetest holds what the Kubernetes end-to-end tests (test/) and
// the benchmark (bench/driver) both need to run a private kube-apiserver
// on loopback: its static token file, its service-account keys, its
// command line, and the RBAC that lets elevate impersonate and do nothing
// else. Starting and stopping the process stays with each caller, which
// have their own process handling.
package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Token is a fresh random bearer token for the static token file.
func Token() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// User is one line of the API server's static token file.
type User struct {
	Token, Name string
	Groups      []string
}

// WriteTokenFile writes users as a --token-auth-file: token,user,uid,
// "group,...", the user's name as its uid.
func WriteTokenFile(path string, users []User) error {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s,%s,%s", u.Token, u.Name, u.Name)
		if len(u.Groups) > 0 {
			fmt.Fprintf(&b, ",%q", strings.Join(u.Groups, ","))
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// WriteServiceAccountKeys writes a fresh P-256 key as dir/sa.key (PKCS #8)
// and its public half as dir/sa.pub (PKIX): the API server signs and checks
// service account tokens with them.
func WriteServiceAccountKeys(dir string) (publicFile, privateFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	publicFile, privateFile = filepath.Join(dir, "sa.pub"), filepath.Join(dir, "sa.key")
	if err := os.WriteFile(publicFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(privateFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return "", "", err
	}
	return publicFile, privateFile, nil
}

// APIServer is the command line of a kube-apiserver on 127.0.0.1 with no
// controller-manager: static tokens, RBAC, and no endpoint reconciler.
type APIServer struct {
	EtcdURL    string
	EtcdPrefix string // "" for the API server's default, /registry
	TokenFile  string
	SAPublic   string // from WriteServiceAccountKeys
	SAPrivate  string
	CertFile   string // the serving certificate, for 127.0.0.1
	KeyFile    string
	CertDir    string
}

// Args are the flags of a, serving on port.
func (a APIServer) Args(port int) []string {
	args := []string{
		"--etcd-servers=" + a.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + a.TokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + a.SAPublic,
		"--service-account-signing-key-file=" + a.SAPrivate,
		"--tls-cert-file=" + a.CertFile,
		"--tls-private-key-file=" + a.KeyFile,
		"--cert-dir=" + a.CertDir,
		"--profiling=false",
	}
	if a.EtcdPrefix != "" {
		args = append(args, "--etcd-prefix="+a.EtcdPrefix)
	}
	return args
}

// ImpersonatorManifest is the RBAC, as YAML documents each starting with
// "---", that lets user impersonate users, groups, service accounts, uids
// and extras, and grants it nothing else. Impersonating an extra is the
// verb impersonate on resource userextras, subresource the extra's key,
// and RBAC has no "userextras/*" wildcard (a rule naming it matches no
// key): "*" in authentication.k8s.io covers uids and every extra.
func ImpersonatorManifest(user string) string {
	return `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: elevate-impersonator}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: ["*"]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: elevate-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: elevate-impersonator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ` + user + `}
`
}
