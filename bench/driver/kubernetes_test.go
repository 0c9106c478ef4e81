package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestInterleave(t *testing.T) {
	require.Equal(t, []int{0, 1, 1, 0, 0, 1}, interleave(3, 2))
	require.Equal(t, []int{0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2}, interleave(4, 3))
	require.Nil(t, interleave(0, 3))
	require.Nil(t, interleave(3, 0))

	// Every variant runs once per round, and as often in each position.
	order := interleave(200, 3)
	require.Len(t, order, 600)
	first := map[int]int{}
	for r := range 200 {
		round := append([]int(nil), order[r*3:r*3+3]...)
		require.ElementsMatch(t, []int{0, 1, 2}, round)
		first[round[0]]++
	}
	require.InDelta(t, 200.0/3, first[0], 1)
	require.InDelta(t, 200.0/3, first[1], 1)
	require.InDelta(t, 200.0/3, first[2], 1)
}

func TestKubeManifest(t *testing.T) {
	dec := yaml.NewDecoder(strings.NewReader(kubeManifest(3)))
	var kinds []string
	var pods []string
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name, Namespace string
			} `yaml:"metadata"`
			Rules []struct {
				APIGroups []string `yaml:"apiGroups"`
				Resources []string `yaml:"resources"`
				Verbs     []string `yaml:"verbs"`
			} `yaml:"rules"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		kinds = append(kinds, doc.Kind)
		if doc.Kind == "Pod" {
			require.Equal(t, kubeNamespace, doc.Metadata.Namespace)
			pods = append(pods, doc.Metadata.Name)
		}
		if doc.Kind == "ClusterRole" {
			// elevate-proxy may impersonate and nothing else.
			for _, r := range doc.Rules {
				require.Equal(t, []string{"impersonate"}, r.Verbs)
			}
		}
		if doc.Kind == "Role" {
			require.Equal(t, []string{"get", "list", "watch"}, doc.Rules[0].Verbs)
		}
	}
	require.Equal(t, []string{"ClusterRole", "ClusterRoleBinding", "Namespace", "ServiceAccount", "Role", "RoleBinding", "Pod", "Pod", "Pod"}, kinds,
		"the namespace and its ServiceAccount come before the pods")
	require.Equal(t, []string{"web-01", "web-02", "web-03"}, pods)
}

func TestKubeconfig(t *testing.T) {
	b, err := kubeconfig("https://127.0.0.1:6443", "/ca.crt", "alice", map[string]any{"token": "t"})
	require.NoError(t, err)
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string         `json:"name"`
			User map[string]any `json:"user"`
		} `json:"users"`
		CurrentContext string `json:"current-context"`
	}
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.Equal(t, "https://127.0.0.1:6443", cfg.Clusters[0].Cluster.Server)
	require.Equal(t, "/ca.crt", cfg.Clusters[0].Cluster.CA)
	require.Equal(t, "alice", cfg.Users[0].Name)
	require.Equal(t, "t", cfg.Users[0].User["token"])
	require.Equal(t, "bench", cfg.CurrentContext)
}

func TestWriteKubeCSV(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	k := &kubeResult{
		Variants: []kubeVariant{{Name: "a", Times: ms(1, 3)}, {Name: "b", Times: ms(2, 4)}},
		Order:    interleave(2, 2),
	}
	var b bytes.Buffer
	require.NoError(t, writeKubeCSV(&b, k))
	require.Equal(t, "seq,round,variant,wall_us\n1,1,a,1000\n2,1,b,2000\n3,2,b,4000\n4,2,a,3000\n", b.String())

	k.Order = append(k.Order, 0)
	require.Error(t, writeKubeCSV(&b, k), "more calls than times")
}

func TestBenchCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := newBenchCA(dir, "ca")
	require.NoError(t, err)
	certFile, keyFile, err := ca.serving(dir, "server")
	require.NoError(t, err)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.pool(), DNSName: "127.0.0.1"})
	require.NoError(t, err)

	// The CA file is what kubeconfigs and elevate's ca_file read.
	b, err := os.ReadFile(ca.pemFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(b))
}

func TestKubernetesMarkdown(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	repo := t.TempDir()
	r := newReport(runConfig{repo: repo, out: filepath.Join(repo, "bench", "results", "latest.md"), kubernetesOnly: true})
	r.Kubernetes = &kubeResult{Calls: 3, Pods: kubePods, Command: "kubectl get pods -n bench", Order: interleave(3, 3),
		Variants: []kubeVariant{
			{Name: kubeDirect, Label: "direct", Times: ms(40, 42, 50)},
			{Name: kubeElevate, Label: "elevate", Times: ms(41, 45, 60)},
			{Name: kubeExec, Label: "exec", Times: ms(60, 62, 70)},
		}}
	md := r.markdown()
	require.NotContains(t, md, "## Throughput", "kubectl only: no wrk section")
	require.NotContains(t, md, "## Go benchmarks")
	require.Contains(t, md, "`BENCH_KUBERNETES_ONLY=1 make bench`")
	require.Contains(t, md, "| direct | 3 | 42.0 ms | 50.0 ms | 40.0 ms | 50.0 ms |")
	require.Contains(t, md, "**elevate adds 3.00 ms to `kubectl get pods`** (p50 through elevate − p50 direct; at p90: 10.0 ms)")
	require.Contains(t, md, "of which the plugin's run is 17.0 ms")
	require.Contains(t, md, "`bench/results/latest-kubectl.csv`")
	require.Equal(t, filepath.Join(repo, "bench", "results", "latest-kubectl.csv"), r.kubeCSVPath())
}
