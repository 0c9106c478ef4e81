package proxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/proxy/identity"
)

// TestKubeVetSubject: no caller is impersonated as one of the cluster's
// system: users, whatever the case; a user prefix keeps subjects apart
// from them; and a prefix that is itself system: is refused at load.
func TestKubeVetSubject(t *testing.T) {
	bare := &route{}
	for sub, refused := range map[string]bool{
		"alice": false, "system:admin": true, "System:Admin": true, "system:serviceaccount:kube-system:default": true,
		"systemd": false, "ops:system:x": false,
	} {
		why := bare.vetSubject(identity.Identity{Subject: sub})
		require.Equal(t, refused, why != "", "%q: %s", sub, why)
	}
	prefixed := &route{Upstream: Upstream{Kubernetes: KubernetesOptions{UserPrefix: "elevate:"}}}
	require.Empty(t, prefixed.vetSubject(identity.Identity{Subject: "system:admin"}))

	for prefix, want := range map[string]string{"system:": "system: user", "SYSTEM:x-": "system: user", "a b": "white space"} {
		_, err := newRoutes([]Upstream{{Name: "k", URL: "https://k.internal", Prefix: "/k/", Type: TypeKubernetes,
			Credential: &Credential{Type: "bearer", ValueEnv: "HOME"}, Kubernetes: KubernetesOptions{UserPrefix: prefix}}})
		require.Error(t, err, prefix)
		require.True(t, strings.Contains(err.Error(), want), err.Error())
	}
}
