package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
)

// The deployment assets in deploy/ cannot run here. These tests load every
// elevate configuration they hold with elevate's own loader, compile the
// policy they ship with elevate's own engine, and check what can drift
// between the configuration and the files around it: mounted paths, ports,
// probes, commands and versions.

var updateDeploy = flag.Bool("update-deploy", false, "rewrite deploy/kubernetes/policy.yaml from the bundle in rego/")

const (
	repoRoot  = "../.."
	deployDir = "../../deploy"
)

// mount is something a deployment asset places in the filesystem elevate
// sees: a volume, a bind mount, a directory systemd creates.
type mount struct {
	// target is where elevate sees it.
	target string
	// source is where its content is in this repository; empty when the
	// operator provides it.
	source string
	// writable says elevate may write there.
	writable bool
	// persistent says it outlives the pod: a volume claim of the pod's own
	// (set by the Kubernetes check only).
	persistent bool
	// files are the names it holds, when the asset lists them (a ConfigMap,
	// a Secret); nil when it does not say.
	files []string
}

type mounts []mount

// find returns the mount holding p (the innermost one) and p relative to it.
func (ms mounts) find(p string) (mount, string, bool) {
	var (
		best mount
		rel  string
		ok   bool
	)
	for _, m := range ms {
		var r string
		switch {
		case p == m.target:
			r = "."
		case strings.HasPrefix(p, strings.TrimSuffix(m.target, "/")+"/"):
			r = strings.TrimPrefix(p, strings.TrimSuffix(m.target, "/")+"/")
		default:
			continue
		}
		if !ok || len(m.target) > len(best.target) {
			best, rel, ok = m, r, true
		}
	}
	return best, rel, ok
}

// deployed is an elevate configuration as a deployment asset runs it.
type deployed struct {
	// asset names it in messages.
	asset string
	yaml  []byte
	// mounts are what the asset puts in elevate's filesystem.
	mounts mounts
	// env is elevate's environment; nil when the asset does not say.
	env map[string]string
}

// checkDeployed loads the configuration as `elevate serve --config` does,
// validates it as start-up does, and checks it against its asset: every
// file it names is on a read-only mount (and one of the files listed there,
// when the mount lists them); every variable it names is set; data_dir and
// the audit directory are writable; the listeners take more than loopback;
// the policy directory is shipped with the asset and compiles. It returns
// the configuration with its defaults.
func checkDeployed(t *testing.T, d deployed) Config {
	t.Helper()
	c, err := parseConfig(d.yaml)
	require.NoError(t, err, d.asset)
	c.defaults(false)

	forEachPath(&c, func(key string, p *string) {
		require.True(t, path.IsAbs(*p), "%s: %s: %q is not absolute", d.asset, key, *p)
		m, rel, ok := d.mounts.find(*p)
		require.True(t, ok, "%s: %s: nothing is mounted at %s", d.asset, key, *p)
		require.False(t, m.writable, "%s: %s: %s is on a writable mount (%s)", d.asset, key, *p, m.target)
		if m.files != nil {
			require.Contains(t, m.files, rel, "%s: %s: the volume at %s has no file %s", d.asset, key, m.target, rel)
		}
	})
	for key, name := range configEnv(c) {
		if d.env != nil {
			require.Contains(t, d.env, name, "%s: %s: variable %s is not set", d.asset, key, name)
		}
	}
	for key, dir := range map[string]string{"data_dir": c.DataDir, "audit.path": path.Dir(c.Audit.Path)} {
		m, _, ok := d.mounts.find(dir)
		require.True(t, ok && m.writable, "%s: %s: %s is not writable", d.asset, key, dir)
	}
	for key, addr := range map[string]string{"proxy_addr": c.ProxyAddr, "control_addr": c.ControlAddr} {
		host, _, err := net.SplitHostPort(addr)
		require.NoError(t, err, "%s: %s", d.asset, key)
		ip := net.ParseIP(host)
		require.True(t, host == "" || ip != nil && ip.IsUnspecified(), "%s: %s: %s is reachable from this host only", d.asset, key, addr)
	}

	checked := c
	key, dirs := "policy.dirs", c.Policy.Dirs
	if c.Policy.Dir != "" {
		key, dirs = "policy.dir", []string{c.Policy.Dir}
	}
	var staged []string
	for _, dir := range dirs {
		m, rel, ok := d.mounts.find(dir)
		require.True(t, ok, "%s: %s: nothing is mounted at %s", d.asset, key, dir)
		require.NotEmpty(t, m.source, "%s: %s: the asset ships no bundle at %s", d.asset, key, dir)
		staged = append(staged, filepath.Join(m.source, filepath.FromSlash(rel)))
	}
	if c.Policy.Dir != "" {
		checked.Policy.Dir = staged[0]
	} else {
		checked.Policy.Dirs = staged
	}
	// Validation reads the upstreams' files, as start-up does: stand-ins
	// take their place.
	checked.Upstreams = stagedUpstreams(t, c.Upstreams)
	require.NoError(t, checked.validate(false), d.asset)
	// The bundle loads as serve loads it: its route tables reach only the
	// configured upstreams (and the built-in catalogs' ones).
	pc := checked.policyConfig()
	pc.Upstreams, err = bundleUpstreams(context.Background(), checked, false)
	require.NoError(t, err, d.asset)
	_, err = policy.New(context.Background(), pc)
	require.NoError(t, err, "%s: %s: the bundle at %v", d.asset, key, dirs)
	return c
}

// forEachPath calls f with the key and a pointer to each file the
// configuration names.
func forEachPath(c *Config, f func(key string, p *string)) {
	visit := func(key string, p *string) {
		if *p != "" {
			f(key, p)
		}
	}
	visit("etcd.ca_file", &c.Etcd.CAFile)
	visit("etcd.cert_file", &c.Etcd.CertFile)
	visit("etcd.key_file", &c.Etcd.KeyFile)
	visit("etcd.password_file", &c.Etcd.PasswordFile)
	for i := range c.Identity.Issuers {
		for j := range c.Identity.Issuers[i].PEMFiles {
			visit(fmt.Sprintf("identity.issuers[%d].pem_files[%d]", i, j), &c.Identity.Issuers[i].PEMFiles[j])
		}
	}
	visit("api.tls_cert_file", &c.API.TLSCertFile)
	visit("api.tls_key_file", &c.API.TLSKeyFile)
	visit("proxy.tls_cert_file", &c.Proxy.TLSCertFile)
	visit("proxy.tls_key_file", &c.Proxy.TLSKeyFile)
	visit("proxy.ca_cert", &c.Proxy.CACert)
	visit("proxy.ca_key", &c.Proxy.CAKey)
	for i := range c.Upstreams {
		visit(fmt.Sprintf("upstreams[%d].ca_file", i), &c.Upstreams[i].CAFile)
		if cr := c.Upstreams[i].Credential; cr != nil {
			visit(fmt.Sprintf("upstreams[%d].credential.value_file", i), &cr.ValueFile)
		}
	}
	visit("notify.smtp.password_file", &c.Notify.SMTP.PasswordFile)
	visit("notify.smtp.ca_file", &c.Notify.SMTP.CAFile)
	for i := range c.Notify.Webhooks {
		visit(fmt.Sprintf("notify.webhooks[%d].header_value_file", i), &c.Notify.Webhooks[i].HeaderValueFile)
	}
}

// configEnv returns the environment variables the configuration reads, by
// key.
func configEnv(c Config) map[string]string {
	env := map[string]string{}
	if c.Etcd.PasswordEnv != "" {
		env["etcd.password_env"] = c.Etcd.PasswordEnv
	}
	for i, u := range c.Upstreams {
		if u.Credential != nil && u.Credential.ValueEnv != "" {
			env[fmt.Sprintf("upstreams[%d].credential.value_env", i)] = u.Credential.ValueEnv
		}
	}
	return env
}

// stagedUpstreams returns copies of ups whose files (CA, credential) are
// stand-ins in a temporary directory, so that the proxy can validate them
// as it does at start-up.
func stagedUpstreams(t *testing.T, ups []proxy.Upstream) []proxy.Upstream {
	t.Helper()
	dir := t.TempDir()
	ca, _, _ := selfSigned(t)
	out := make([]proxy.Upstream, len(ups))
	for i, u := range ups {
		if u.CAFile != "" {
			u.CAFile = filepath.Join(dir, fmt.Sprintf("ca-%d.pem", i))
			require.NoError(t, os.WriteFile(u.CAFile, []byte(ca), 0o600))
		}
		if u.Credential != nil {
			cr := *u.Credential
			if cr.ValueFile != "" {
				cr.ValueFile = filepath.Join(dir, fmt.Sprintf("secret-%d", i))
				require.NoError(t, os.WriteFile(cr.ValueFile, []byte("stand-in\n"), 0o600))
			}
			if cr.ValueEnv != "" {
				t.Setenv(cr.ValueEnv, "stand-in")
			}
			u.Credential = &cr
		}
		out[i] = u
	}
	return out
}

// elevateCommand checks that args is a command line elevate accepts: the
// command exists, its flags parse and its arguments fit. It returns the
// command with its flags set.
func elevateCommand(t *testing.T, asset string, args []string) *cobra.Command {
	t.Helper()
	cmd, rest, err := rootCmd().Find(args)
	require.NoError(t, err, "%s: elevate %s", asset, strings.Join(args, " "))
	require.True(t, cmd.HasParent(), "%s: elevate %s names no command", asset, strings.Join(args, " "))
	require.NoError(t, cmd.ParseFlags(rest), "%s: elevate %s", asset, strings.Join(args, " "))
	require.NoError(t, cmd.ValidateArgs(cmd.Flags().Args()), "%s: elevate %s", asset, strings.Join(args, " "))
	return cmd
}

// flagOf returns the value of a flag that the command line set.
func flagOf(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	require.NotNil(t, f, "elevate %s has no --%s", cmd.Name(), name)
	require.True(t, f.Changed, "elevate %s: --%s is not given", cmd.Name(), name)
	return f.Value.String()
}

// portOf returns the port of a host:port address or of a URL.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	n, err := strconv.Atoi(p)
	require.NoError(t, err, addr)
	return n
}

// goModVersions returns the go directive of go.mod and the version of each
// required module.
func goModVersions(t *testing.T) (goVersion string, modules map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	require.NoError(t, err)
	modules = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		switch {
		case len(f) == 2 && f[0] == "go":
			goVersion = f[1]
		case len(f) >= 2 && strings.HasPrefix(f[1], "v"):
			modules[f[0]] = f[1]
		}
	}
	require.NotEmpty(t, goVersion, "go.mod has no go directive")
	return goVersion, modules
}

// dockerStage is one stage of deploy/Dockerfile.
type dockerStage struct {
	name, from string
	user       string
	entrypoint []string
	cmd        []string
	expose     []string
	runs       []string
}

// parseDockerfile returns the global ARG defaults and the stages.
func parseDockerfile(t *testing.T) (map[string]string, []dockerStage) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	require.NoError(t, err)
	var lines []string
	var cont strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cont.Len() == 0 {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cont.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cont.WriteString(trimmed)
		lines = append(lines, cont.String())
		cont.Reset()
	}
	args := map[string]string{}
	var stages []dockerStage
	execForm := func(s string) []string {
		var v []string
		require.NoError(t, json.Unmarshal([]byte(s), &v), "Dockerfile: %s is not in exec form", s)
		return v
	}
	for _, line := range lines {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		var st *dockerStage
		if len(stages) > 0 {
			st = &stages[len(stages)-1]
		}
		instr = strings.ToUpper(instr)
		require.True(t, st != nil || instr == "ARG" || instr == "FROM", "Dockerfile: %s before the first FROM", instr)
		switch instr {
		case "ARG":
			if st == nil {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = v
			}
		case "FROM":
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			s := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case "USER":
			st.user = rest
		case "ENTRYPOINT":
			st.entrypoint = execForm(rest)
		case "CMD":
			st.cmd = execForm(rest)
		case "EXPOSE":
			st.expose = strings.Fields(rest)
		case "RUN":
			st.runs = append(st.runs, rest)
		}
	}
	return args, stages
}

// stageNamed returns the stage "FROM ... AS name".
func stageNamed(t *testing.T, stages []dockerStage, name string) dockerStage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	require.Failf(t, "Dockerfile", "no stage %q", name)
	return dockerStage{}
}

// imageUser checks that a stage runs as a numeric user and group other than
// root, and returns the user id.
func imageUser(t *testing.T, s dockerStage) int {
	t.Helper()
	uid, gid, ok := strings.Cut(s.user, ":")
	require.True(t, ok, "Dockerfile: stage %s: USER %q: give uid:gid", s.name, s.user)
	u, err := strconv.Atoi(uid)
	require.NoError(t, err, "Dockerfile: stage %s: USER %q is not numeric", s.name, s.user)
	_, err = strconv.Atoi(gid)
	require.NoError(t, err, "Dockerfile: stage %s: USER %q is not numeric", s.name, s.user)
	require.NotZero(t, u, "Dockerfile: stage %s runs as root", s.name)
	return u
}

// TestDeployDockerfile: both images are static binaries on an empty base,
// built with go.mod's Go version, run as a numeric non-root user; the
// default command is one elevate accepts.
func TestDeployDockerfile(t *testing.T) {
	goVersion, modules := goModVersions(t)
	args, stages := parseDockerfile(t)
	require.Equal(t, goVersion, args["GO_VERSION"], "Dockerfile: GO_VERSION must be go.mod's go version")
	builders := 0
	for _, s := range stages {
		if strings.HasPrefix(s.from, "golang:") {
			builders++
			require.Equal(t, "golang:${GO_VERSION}", s.from, "Dockerfile: stage %s", s.name)
		}
	}
	require.NotZero(t, builders, "Dockerfile: no golang builder stage")

	for _, tc := range []struct {
		stage, build, pkg string
	}{
		{stage: "elevate", build: "build-elevate", pkg: "./cmd/elevate"},
		{stage: "etcd", build: "build-etcd", pkg: "go.etcd.io/etcd/server/v3"},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			s := stageNamed(t, stages, tc.stage)
			require.Equal(t, "scratch", s.from, "Dockerfile: stage %s", tc.stage)
			imageUser(t, s)
			require.Len(t, s.entrypoint, 1)
			b := stageNamed(t, stages, tc.build)
			built := false
			for _, run := range b.runs {
				if strings.Contains(run, "go build") && strings.HasSuffix(run, " "+tc.pkg) {
					built = true
					require.Contains(t, run, "CGO_ENABLED=0")
					require.Contains(t, run, "-trimpath")
					require.Contains(t, run, "-o "+path.Join("/out", path.Base(s.entrypoint[0])))
				}
			}
			require.True(t, built, "Dockerfile: stage %s does not build %s", tc.build, tc.pkg)
			if !strings.HasPrefix(tc.pkg, "./") {
				// Built at the version go.mod requires.
				require.Contains(t, modules, tc.pkg, "go.mod does not require %s", tc.pkg)
			}
		})
	}

	final := stages[len(stages)-1]
	require.Equal(t, "elevate", final.name, "Dockerfile: the last stage (the default target) must be elevate")
	cmd := elevateCommand(t, "Dockerfile", final.cmd)
	require.Equal(t, "serve", cmd.Name())
	c, err := loadConfig(filepath.Join(deployDir, "compose", "elevate.yaml"))
	require.NoError(t, err)
	require.ElementsMatch(t, []int{portOf(t, c.ProxyAddr), portOf(t, c.ControlAddr)}, exposed(t, final),
		"Dockerfile: EXPOSE the ports elevate listens on in deploy/compose")

	ignore, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile.dockerignore"))
	require.NoError(t, err)
	require.Contains(t, strings.Fields(string(ignore)), "deploy/compose/keys", "the compose issuer's private key must stay out of the build context")
}

// exposed returns the ports a stage exposes.
func exposed(t *testing.T, s dockerStage) []int {
	t.Helper()
	var ports []int
	for _, e := range s.expose {
		n, err := strconv.Atoi(strings.TrimSuffix(e, "/tcp"))
		require.NoError(t, err, "Dockerfile: EXPOSE %s", e)
		ports = append(ports, n)
	}
	return ports
}

// composeFile is the part of docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   []string          `yaml:"depends_on"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
}

// target is the Dockerfile stage a service is built from, or "".
func (s composeService) target() string {
	if s.Build == nil {
		return ""
	}
	return s.Build.Target
}

// commandFlag returns the value of --name in a command line, given as
// "--name value" or "--name=value".
func commandFlag(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// TestDeployCompose: the compose stack's configuration loads, and agrees
// with the services around it: etcd members, Jaeger, the demo upstream,
// mounts, published ports and the token issuer's keys.
func TestDeployCompose(t *testing.T) {
	dir := filepath.Join(deployDir, "compose")
	b, err := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(b, &cf))
	_, stages := parseDockerfile(t)
	keysScript, err := os.ReadFile(filepath.Join(dir, "keys.sh"))
	require.NoError(t, err)

	etcdMembers := map[string]composeService{}
	var replicas []string
	for name, s := range cf.Services {
		if s.Build != nil {
			require.Equal(t, filepath.Clean(repoRoot), filepath.Clean(filepath.Join(dir, s.Build.Context)), "compose: %s: the build context is the repository root", name)
			require.FileExists(t, filepath.Join(dir, s.Build.Context, s.Build.Dockerfile), "compose: %s", name)
			stageNamed(t, stages, s.Build.Target)
			require.True(t, s.ReadOnly, "compose: %s: read_only", name)
			for _, v := range s.Volumes {
				if src, _, _ := strings.Cut(v, ":"); !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
					require.Contains(t, cf.Volumes, src, "compose: %s: volume %s is not declared", name, src)
				}
			}
			require.Equal(t, []string{"ALL"}, s.CapDrop, "compose: %s: cap_drop", name)
		}
		switch {
		case s.target() == "etcd":
			etcdMembers[name] = s
		case s.target() == "elevate" && len(s.Command) > 0 && s.Command[0] == "serve":
			replicas = append(replicas, name)
		}
	}
	sort.Strings(replicas)
	require.Len(t, etcdMembers, 3, "compose: etcd members")
	require.Len(t, replicas, 2, "compose: elevate replicas")

	t.Run("etcd cluster", func(t *testing.T) {
		var cluster []string
		for name, s := range etcdMembers {
			got, _ := commandFlag(s.Command, "name")
			require.Equal(t, name, got, "compose: %s: --name is the service name", name)
			peer, _ := commandFlag(s.Command, "initial-advertise-peer-urls")
			require.Equal(t, "http://"+name+":2380", peer, "compose: %s", name)
			cluster = append(cluster, name+"="+peer)
			dataDir, _ := commandFlag(s.Command, "data-dir")
			m, _, ok := serviceMounts(t, dir, s).find(dataDir)
			require.True(t, ok && m.writable, "compose: %s: --data-dir %s is not on a writable volume", name, dataDir)
		}
		sort.Strings(cluster)
		for name, s := range etcdMembers {
			got, _ := commandFlag(s.Command, "initial-cluster")
			members := strings.Split(got, ",")
			sort.Strings(members)
			require.Equal(t, cluster, members, "compose: %s: --initial-cluster", name)
		}
	})

	t.Run("demo upstream command", func(t *testing.T) {
		demo, ok := cf.Services["demo"]
		require.True(t, ok, "compose: no demo service")
		if _, _, err := rootCmd().Find(demo.Command); err != nil {
			t.Skipf("elevate has no %q command to run the demo upstream on its own", demo.Command[0])
		}
		elevateCommand(t, "compose: demo", demo.Command)
	})

	for _, name := range replicas {
		t.Run(name, func(t *testing.T) {
			s := cf.Services[name]
			asset := "compose: " + name
			cmd := elevateCommand(t, asset, s.Command)
			configPath := flagOf(t, cmd, "config")
			ms := serviceMounts(t, dir, s)
			m, rel, ok := ms.find(configPath)
			require.True(t, ok && m.source != "", "%s: --config %s is not mounted from the repository", asset, configPath)
			y, err := os.ReadFile(filepath.Join(m.source, rel))
			require.NoError(t, err)
			c := checkDeployed(t, deployed{asset: asset, yaml: y, mounts: ms, env: s.Environment})

			// Published ports: loopback only, onto the ports elevate listens on.
			var published []int
			for _, p := range s.Ports {
				f := strings.Split(p, ":")
				require.Len(t, f, 3, "%s: ports: %q: give host ip:host port:container port", asset, p)
				require.True(t, net.ParseIP(f[0]).IsLoopback(), "%s: ports: %q is published beyond this host", asset, p)
				n, err := strconv.Atoi(f[2])
				require.NoError(t, err)
				published = append(published, n)
			}
			require.ElementsMatch(t, []int{portOf(t, c.ProxyAddr), portOf(t, c.ControlAddr)}, published, "%s: ports", asset)

			// Every etcd member, and no other endpoint.
			var endpoints []string
			for _, e := range c.Etcd.Endpoints {
				u, err := url.Parse(e)
				require.NoError(t, err)
				member, ok := etcdMembers[u.Hostname()]
				require.True(t, ok, "%s: etcd.endpoints: %s is no etcd service", asset, e)
				adv, _ := commandFlag(member.Command, "advertise-client-urls")
				require.Equal(t, e, adv, "%s: etcd.endpoints: %s is not what %s advertises", asset, e, u.Hostname())
				listen, _ := commandFlag(member.Command, "listen-client-urls")
				require.Equal(t, portOf(t, e), portOf(t, listen), "%s: etcd.endpoints: %s", asset, e)
				endpoints = append(endpoints, u.Hostname())
				require.Contains(t, s.DependsOn, u.Hostname(), "%s: depends_on", asset)
			}
			require.ElementsMatch(t, slices.Collect(maps.Keys(etcdMembers)), endpoints, "%s: etcd.endpoints", asset)

			// Upstreams are compose services, on the port they listen on.
			for i, up := range c.Upstreams {
				u, err := url.Parse(up.URL)
				require.NoError(t, err)
				svc, ok := cf.Services[u.Hostname()]
				require.True(t, ok, "%s: upstreams[%d].url: %s is no compose service", asset, i, up.URL)
				require.Contains(t, s.DependsOn, u.Hostname(), "%s: depends_on", asset)
				listen, ok := commandFlag(svc.Command, "listen")
				require.True(t, ok, "%s: upstreams[%d]: service %s has no --listen", asset, i, u.Hostname())
				require.Equal(t, portOf(t, listen), portOf(t, up.URL), "%s: upstreams[%d].url", asset, i)
			}

			// Traces go to Jaeger's OTLP/HTTP receiver.
			otlp := s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
			u, err := url.Parse(otlp)
			require.NoError(t, err)
			jaeger, ok := cf.Services[u.Hostname()]
			require.True(t, ok, "%s: OTEL_EXPORTER_OTLP_ENDPOINT: %q is no compose service", asset, otlp)
			require.Contains(t, s.DependsOn, u.Hostname(), "%s: depends_on", asset)
			receiver := jaeger.Environment["JAEGER_OTLP_HTTP_ENDPOINT"]
			require.Equal(t, portOf(t, receiver), portOf(t, otlp), "%s: OTEL_EXPORTER_OTLP_ENDPOINT", asset)
			require.True(t, net.ParseIP(strings.Split(receiver, ":")[0]).IsUnspecified(), "jaeger: JAEGER_OTLP_HTTP_ENDPOINT must take other containers' traces")

			// The token issuer: what keys.sh makes is what the replica mounts,
			// and a token from `elevate token --data-dir keys` passes.
			for _, iss := range c.Identity.Issuers {
				for _, p := range iss.PEMFiles {
					m, _, _ := ms.find(p)
					require.Empty(t, m.source, "%s: %s ships with the repository; keys.sh makes it", asset, p)
				}
			}
			checkComposeIssuer(t, string(keysScript), c, s.Volumes)
		})
	}

	t.Run("jaeger", func(t *testing.T) {
		j := cf.Services["jaeger"]
		require.Regexp(t, `^jaegertracing/jaeger:2\.\d+\.\d+$`, j.Image, "compose: jaeger: a pinned Jaeger 2 image")
		configPath, ok := commandFlag(j.Command, "config")
		require.True(t, ok, "compose: jaeger: --config")
		m, rel, ok := serviceMounts(t, dir, j).find(configPath)
		require.True(t, ok && m.source != "", "compose: jaeger: --config %s is not mounted from the repository", configPath)
		jc, err := os.ReadFile(filepath.Join(m.source, rel))
		require.NoError(t, err)
		for name := range j.Environment {
			require.Contains(t, string(jc), "${env:"+name+":", "compose: jaeger: %s is not read by %s", name, configPath)
		}
	})
}

// serviceMounts returns a compose service's volumes. Bind mounts from the
// repository must exist, except those under ./keys, which keys.sh makes.
func serviceMounts(t *testing.T, composeDir string, s composeService) mounts {
	t.Helper()
	var ms mounts
	for _, v := range s.Volumes {
		f := strings.Split(v, ":")
		require.True(t, len(f) == 2 || len(f) == 3, "compose: volume %q", v)
		m := mount{target: f[1], writable: len(f) == 2 || f[2] != "ro"}
		if strings.HasPrefix(f[0], ".") || strings.HasPrefix(f[0], "/") {
			if !strings.HasPrefix(f[0], "./keys/") {
				m.source = filepath.Join(composeDir, f[0])
				_, err := os.Stat(m.source)
				require.NoError(t, err, "compose: volume %q", v)
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// checkComposeIssuer runs keys.sh in a temporary directory (with openssl;
// without it, makes the same files in Go) and verifies a token of the dev
// issuer kept there with the configuration's issuers, reading each public
// key from the file the replica's volumes mount.
func checkComposeIssuer(t *testing.T, script string, c Config, volumes []string) {
	t.Helper()
	work := t.TempDir()
	keysDir := filepath.Join(work, "keys")
	if _, err := exec.LookPath("openssl"); err == nil {
		require.NoError(t, os.WriteFile(filepath.Join(work, "keys.sh"), []byte(script), 0o755))
		out, err := exec.Command("sh", filepath.Join(work, "keys.sh")).CombinedOutput()
		require.NoError(t, err, "keys.sh: %s", out)
	} else {
		t.Log("no openssl: making the issuer's keys in Go instead of with keys.sh")
		dev, err := identity.LoadOrCreateDevIssuer(keysDir)
		require.NoError(t, err)
		for _, k := range dev.Issuer().Keys {
			der, err := x509.MarshalPKIXPublicKey(k)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(keysDir, "dev-issuer.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
		}
	}
	dev, err := identity.LoadDevIssuer(keysDir)
	require.NoError(t, err, "`elevate token --data-dir keys` must find the key keys.sh makes")
	tok, err := dev.Sign(identity.DevToken{Subject: "ada", Groups: []string{"admins"}})
	require.NoError(t, err)

	issuers := slices.Clone(c.Identity.Issuers)
	for i := range issuers {
		issuers[i].PEMFiles = slices.Clone(issuers[i].PEMFiles)
		for j, p := range issuers[i].PEMFiles {
			found := false
			for _, v := range volumes {
				src, rest, _ := strings.Cut(v, ":")
				target, _, _ := strings.Cut(rest, ":")
				if target == p {
					rel, ok := strings.CutPrefix(src, "./keys/")
					require.True(t, ok, "compose: %s is not mounted from ./keys", p)
					issuers[i].PEMFiles[j] = filepath.Join(keysDir, rel)
					found = true
				}
			}
			require.True(t, found, "compose: nothing is mounted at %s", p)
		}
	}
	v, err := identity.New(context.Background(), identity.Config{Issuers: issuers, Leeway: c.Identity.Leeway})
	require.NoError(t, err)
	id, err := v.Verify(context.Background(), tok)
	require.NoError(t, err, "a token of `elevate token --data-dir keys` is refused")
	require.Equal(t, "ada", id.Subject)
}

// k8sObject is one Kubernetes manifest, its body kept for decoding by kind.
type k8sObject struct {
	file string
	kind string
	name string
	node yaml.Node
}

type k8sMeta struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
}

type k8sData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type k8sStatefulSet struct {
	Spec struct {
		Replicas    int    `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []k8sVolume    `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// VolumeClaimTemplates give each pod volumes of its own that
		// outlive it.
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				AccessModes []string `yaml:"accessModes"`
				Resources   struct {
					Requests map[string]string `yaml:"requests"`
				} `yaml:"resources"`
			} `yaml:"spec"`
		} `yaml:"volumeClaimTemplates"`
		PersistentVolumeClaimRetentionPolicy struct {
			WhenDeleted string `yaml:"whenDeleted"`
			WhenScaled  string `yaml:"whenScaled"`
		} `yaml:"persistentVolumeClaimRetentionPolicy"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name string `yaml:"name"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   string `yaml:"port"`
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type k8sVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	EmptyDir *struct{} `yaml:"emptyDir"`
}

type k8sService struct {
	Spec struct {
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	Spec struct {
		MinAvailable string `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

// readManifests returns every object of the YAML files in dir, but the
// kustomization.
func readManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	var out []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				require.ErrorIs(t, err, io.EOF, f)
				break
			}
			var meta k8sMeta
			require.NoError(t, n.Decode(&meta), f)
			out = append(out, k8sObject{file: filepath.Base(f), kind: meta.Kind, name: meta.Metadata.Name, node: n})
		}
	}
	return out
}

// object returns the manifest of that kind and name, decoded into v.
func object(t *testing.T, objs []k8sObject, kind, name string, v any) k8sObject {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			require.NoError(t, o.node.Decode(v), "%s %s", kind, name)
			return o
		}
	}
	require.Failf(t, "kubernetes", "no %s %q", kind, name)
	return k8sObject{}
}

// kubeletVolume writes files as the kubelet mounts a ConfigMap or Secret:
// in a hidden timestamped directory, "..data" linking to it, and a link per
// file. It returns the directory.
func kubeletVolume(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	const ts = "..2026_01_02_03_04_05.000000001"
	require.NoError(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ts, name), []byte(content), 0o644))
		require.NoError(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
	}
	require.NoError(t, os.Symlink(ts, filepath.Join(dir, "..data")))
	return dir
}

// policyConfigMap is deploy/kubernetes/policy.yaml as generated from the
// bundle in rego/: every module but the tests, and every route table, one
// key each.
func policyConfigMap(t *testing.T) (map[string]string, []byte) {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(rego.Bundle, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := path.Base(name)
		switch {
		case strings.HasSuffix(base, "_test.rego"):
			return nil
		case strings.HasSuffix(base, ".rego"):
		case slices.Contains([]string{".yaml", ".yml", ".json"}, path.Ext(base)) && strings.TrimSuffix(base, path.Ext(base)) != "data":
			// A route table means the same in any directory.
		default:
			// A data file is merged at the path of its directory, which a
			// ConfigMap's flat keys cannot keep.
			return fmt.Errorf("%s: only .rego files and route tables fit in the ConfigMap", name)
		}
		if _, dup := files[base]; dup {
			return fmt.Errorf("%s: two modules named %s", name, base)
		}
		b, err := fs.ReadFile(rego.Bundle, name)
		files[base] = string(b)
		return err
	})
	require.NoError(t, err)

	data := &yaml.Node{Kind: yaml.MappingNode}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		data.Content = append(data.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: name},
			&yaml.Node{Kind: yaml.ScalarNode, Value: files[name], Style: yaml.LiteralStyle})
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("apiVersion"), str("v1"),
		str("kind"), str("ConfigMap"),
		str("metadata"), {Kind: yaml.MappingNode, Content: []*yaml.Node{
			str("name"), str("elevate-policy"),
			str("labels"), {Kind: yaml.MappingNode, Content: []*yaml.Node{str("app.kubernetes.io/name"), str("elevate")}},
		}},
		str("data"), data,
	}}
	var buf bytes.Buffer
	buf.WriteString("# The policy bundle, mounted at /etc/elevate/policy: rego/ without its\n" +
		"# tests, one key per module or route table. Generated from rego/; edit\n" +
		"# rego/ and run\n" +
		"#   go test ./cmd/elevate -run TestDeployKubernetes -update-deploy\n" +
		"# Add your own catalogs and conditions as further keys of a copy.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	require.NoError(t, enc.Encode(doc))
	require.NoError(t, enc.Close())
	return files, buf.Bytes()
}

// TestDeployKubernetes: the ConfigMap's configuration loads, the policy
// ConfigMap is rego/'s bundle and compiles as mounted, the StatefulSet,
// Services, Secret and PodDisruptionBudget agree with the configuration and
// with each other, and the audit log is on a volume of each pod's own.
func TestDeployKubernetes(t *testing.T) {
	dir := filepath.Join(deployDir, "kubernetes")

	wantPolicy, generated := policyConfigMap(t)
	if *updateDeploy {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "policy.yaml"), generated, 0o644))
	}

	objs := readManifests(t, dir)
	var kz kustomization
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &kz))
	var files []string
	for _, o := range objs {
		if o.kind != "Secret" && !slices.Contains(files, o.file) {
			files = append(files, o.file)
		}
	}
	require.ElementsMatch(t, files, kz.Resources, "kustomization.yaml: resources are every manifest but the Secret's")

	var policyCM k8sData
	object(t, objs, "ConfigMap", "elevate-policy", &policyCM)
	require.Equal(t, wantPolicy, policyCM.Data,
		"deploy/kubernetes/policy.yaml is not rego/'s bundle: go test ./cmd/elevate -run TestDeployKubernetes -update-deploy")
	size := 0
	for k, v := range policyCM.Data {
		size += len(k) + len(v)
	}
	require.Less(t, size, 1<<20, "a ConfigMap holds at most 1 MiB")

	var sts k8sStatefulSet
	object(t, objs, "StatefulSet", "elevate", &sts)
	pod := sts.Spec.Template.Spec
	labels := sts.Spec.Template.Metadata.Labels
	require.Subset(t, labels, sts.Spec.Selector.MatchLabels, "StatefulSet: selector")
	require.GreaterOrEqual(t, sts.Spec.Replicas, 2, "StatefulSet: replicas")
	require.Len(t, pod.Containers, 1)
	ctr := pod.Containers[0]
	var images []string
	for _, im := range kz.Images {
		images = append(images, im.Name)
	}
	require.Contains(t, images, ctr.Image, "kustomization.yaml: images names the container's image")

	// Runs as the image's user, with nothing to spare.
	_, stages := parseDockerfile(t)
	require.True(t, pod.SecurityContext.RunAsNonRoot)
	require.Equal(t, imageUser(t, stageNamed(t, stages, "elevate")), pod.SecurityContext.RunAsUser, "StatefulSet: runAsUser is the image's USER")
	require.NotNil(t, ctr.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *ctr.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, ctr.SecurityContext.ReadOnlyRootFilesystem)
	require.Equal(t, []string{"ALL"}, ctr.SecurityContext.Capabilities.Drop)

	// The command line, and the volumes elevate sees.
	require.Empty(t, ctr.Command, "the image's entrypoint runs elevate")
	cmd := elevateCommand(t, "StatefulSet", ctr.Args)
	require.Equal(t, "serve", cmd.Name())
	configPath := flagOf(t, cmd, "config")
	volumes := map[string]k8sVolume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	claims := map[string]bool{}
	for _, vc := range sts.Spec.VolumeClaimTemplates {
		_, dup := volumes[vc.Metadata.Name]
		require.False(t, dup, "StatefulSet: %s is both a volume and a volume claim", vc.Metadata.Name)
		require.Equal(t, []string{"ReadWriteOnce"}, vc.Spec.AccessModes, "StatefulSet: volume claim %s: one pod's", vc.Metadata.Name)
		require.NotEmpty(t, vc.Spec.Resources.Requests["storage"], "StatefulSet: volume claim %s: size", vc.Metadata.Name)
		claims[vc.Metadata.Name] = true
	}
	var ms mounts
	contents := map[string]map[string]string{}
	var secretKeys []string
	for _, vm := range ctr.VolumeMounts {
		require.Empty(t, vm.SubPath, "StatefulSet: %s: a subPath mount never sees updates", vm.Name)
		v, ok := volumes[vm.Name]
		require.True(t, ok || claims[vm.Name], "StatefulSet: volumeMounts: no volume or volume claim %q", vm.Name)
		m := mount{target: vm.MountPath}
		switch {
		case claims[vm.Name]:
			m.writable, m.persistent = !vm.ReadOnly, true
		case v.ConfigMap != nil:
			var cm k8sData
			object(t, objs, "ConfigMap", v.ConfigMap.Name, &cm)
			m.files = slices.Sorted(maps.Keys(cm.Data))
			m.source = kubeletVolume(t, cm.Data)
			contents[vm.MountPath] = cm.Data
		case v.Secret != nil:
			var s k8sData
			object(t, objs, "Secret", v.Secret.SecretName, &s)
			for k := range s.Data {
				secretKeys = append(secretKeys, k)
			}
			for k := range s.StringData {
				secretKeys = append(secretKeys, k)
			}
			m.files = secretKeys
		case v.EmptyDir != nil:
			m.writable = !vm.ReadOnly
		default:
			require.Failf(t, "StatefulSet", "volume %q: unexpected kind", vm.Name)
		}
		ms = append(ms, m)
	}
	cm, rel, ok := ms.find(configPath)
	require.True(t, ok && cm.source != "", "StatefulSet: --config %s is on no ConfigMap", configPath)
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = ""
	}
	c := checkDeployed(t, deployed{asset: "kubernetes", yaml: []byte(contents[cm.target][rel]), mounts: ms, env: env})

	// Each replica keeps its write-ahead audit log until the trail is
	// cluster-wide: the log is on a volume claim of the pod's own, which
	// outlives the pod and is kept when the StatefulSet is deleted or
	// scaled down, never on an emptyDir that goes with the pod.
	am, _, ok := ms.find(path.Dir(c.Audit.Path))
	require.True(t, ok && am.persistent, "StatefulSet: audit.path %s is not on a volume claim of the pod's own", c.Audit.Path)
	require.Equal(t, "Retain", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, "StatefulSet: audit volumes are kept when it is deleted")
	require.Equal(t, "Retain", sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled, "StatefulSet: audit volumes are kept when it is scaled down")

	// Every key of the Secret is a file the configuration reads, and its
	// header's kubectl command creates exactly those keys.
	used := map[string]bool{}
	forEachPath(&c, func(_ string, p *string) {
		if m, rel, ok := ms.find(*p); ok && m.files != nil {
			used[rel] = true
		}
	})
	for _, k := range secretKeys {
		require.True(t, used[k], "secret.yaml: key %s is read by nothing", k)
	}
	for _, doc := range []string{filepath.Join(dir, "secret.yaml"), filepath.Join(deployDir, "README.md")} {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		var fromFile []string
		for _, m := range regexp.MustCompile(`--from-file=([^\s\\]+)`).FindAllStringSubmatch(string(b), -1) {
			fromFile = append(fromFile, m[1])
		}
		require.ElementsMatch(t, secretKeys, fromFile, "%s: the command that creates the Secret", doc)
	}

	// Ports and probes.
	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, portOf(t, c.ProxyAddr), ports["proxy"], "StatefulSet: port proxy is proxy_addr's")
	require.Equal(t, portOf(t, c.ControlAddr), ports["control"], "StatefulSet: port control is control_addr's")
	require.ElementsMatch(t, exposed(t, stageNamed(t, stages, "elevate")), slices.Collect(maps.Values(ports)), "StatefulSet: the ports the image exposes")
	probePort := func(p string) int {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
		n, ok := ports[p]
		require.True(t, ok, "StatefulSet: no container port %q", p)
		return n
	}
	scheme := "HTTP"
	if c.API.TLSCertFile != "" {
		scheme = "HTTPS"
	}
	for _, tc := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{
		{name: "readinessProbe", probe: ctr.ReadinessProbe, path: "/readyz"},
		{name: "livenessProbe", probe: ctr.LivenessProbe, path: "/healthz"},
	} {
		require.NotNil(t, tc.probe, "StatefulSet: %s", tc.name)
		require.NotNil(t, tc.probe.HTTPGet, "StatefulSet: %s", tc.name)
		require.Equal(t, tc.path, tc.probe.HTTPGet.Path, "StatefulSet: %s", tc.name)
		require.Equal(t, portOf(t, c.ControlAddr), probePort(tc.probe.HTTPGet.Port), "StatefulSet: %s is on the control listener", tc.name)
		got := tc.probe.HTTPGet.Scheme
		if got == "" {
			got = "HTTP"
		}
		require.Equal(t, scheme, got, "StatefulSet: %s: the control listener's scheme", tc.name)
	}

	// The Service reaches these pods on both listeners.
	var svc k8sService
	object(t, objs, "Service", "elevate", &svc)
	require.NotEmpty(t, svc.Spec.Selector)
	require.Subset(t, labels, svc.Spec.Selector, "Service: selector")
	var targets []int
	for _, p := range svc.Spec.Ports {
		targets = append(targets, probePort(p.TargetPort))
	}
	require.ElementsMatch(t, []int{portOf(t, c.ProxyAddr), portOf(t, c.ControlAddr)}, targets, "Service: targetPorts")

	// The StatefulSet's governing Service is headless and selects its pods.
	var headless k8sService
	object(t, objs, "Service", sts.Spec.ServiceName, &headless)
	require.Equal(t, "None", headless.Spec.ClusterIP, "Service %s: headless", sts.Spec.ServiceName)
	require.NotEmpty(t, headless.Spec.Selector)
	require.Subset(t, labels, headless.Spec.Selector, "Service %s: selector", sts.Spec.ServiceName)

	// The disruption budget covers these pods and lets a drain proceed.
	var pdb k8sPDB
	object(t, objs, "PodDisruptionBudget", "elevate", &pdb)
	require.NotEmpty(t, pdb.Spec.Selector.MatchLabels)
	require.Subset(t, labels, pdb.Spec.Selector.MatchLabels, "PodDisruptionBudget: selector")
	minAvailable, err := strconv.Atoi(pdb.Spec.MinAvailable)
	require.NoError(t, err, "PodDisruptionBudget: minAvailable")
	require.Positive(t, minAvailable)
	require.Less(t, minAvailable, sts.Spec.Replicas, "PodDisruptionBudget: minAvailable must leave room to evict a pod")
}

// unitFile is a systemd unit: section, then key, then its values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, p string) unitFile {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", p, line)
			require.NotEmpty(t, section, "%s: %q is outside a section", p, line)
			u[section][k] = append(u[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

// one returns the single value of a key.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	require.Len(t, v, 1, "elevate.service: [%s] %s", section, key)
	return v[0]
}

// TestDeploySystemd: the unit's configuration loads, names only the
// directories the unit creates or keeps read-only, and the unit is
// hardened.
func TestDeploySystemd(t *testing.T) {
	dir := filepath.Join(deployDir, "systemd")
	u := parseUnit(t, filepath.Join(dir, "elevate.service"))

	execStart := strings.Fields(u.one(t, "Service", "ExecStart"))
	require.Equal(t, "/usr/local/bin/elevate", execStart[0])
	cmd := elevateCommand(t, "elevate.service", execStart[1:])
	require.Equal(t, "serve", cmd.Name())
	configPath := flagOf(t, cmd, "config")

	// ProtectSystem=strict: only the directories systemd makes for the
	// service are writable. The rest is what deploy/README.md installs.
	require.Equal(t, "strict", u.one(t, "Service", "ProtectSystem"))
	require.Empty(t, u["Service"]["ReadWritePaths"], "elevate.service: write only to the directories systemd makes")
	confDir := "/etc/" + u.one(t, "Service", "ConfigurationDirectory")
	ms := mounts{
		{target: "/var/lib/" + u.one(t, "Service", "StateDirectory"), writable: true},
		{target: "/var/log/" + u.one(t, "Service", "LogsDirectory"), writable: true},
		{target: confDir},
		{target: path.Join(confDir, "elevate.yaml"), source: filepath.Join(dir, "elevate.yaml")},
		{target: path.Join(confDir, "policy"), source: filepath.Join(repoRoot, "rego")},
	}
	require.Equal(t, path.Join(confDir, "elevate.yaml"), configPath, "elevate.service: --config")
	y, err := os.ReadFile(filepath.Join(dir, "elevate.yaml"))
	require.NoError(t, err)
	env := map[string]string{}
	for _, e := range u["Service"]["Environment"] {
		k, _, _ := strings.Cut(e, "=")
		env[k] = ""
	}
	if len(u["Service"]["EnvironmentFile"]) > 0 {
		env = nil // what the file sets is unknown here
	}
	c := checkDeployed(t, deployed{asset: "systemd", yaml: y, mounts: ms, env: env})

	// Its own user, never root.
	user := u.one(t, "Service", "User")
	require.NotEqual(t, "root", user)
	sysusers, err := os.ReadFile(filepath.Join(dir, "elevate.sysusers"))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^u `+regexp.QuoteMeta(user)+` `, string(sysusers), "elevate.sysusers creates the unit's user")

	// No capabilities, so no port below 1024.
	require.Equal(t, []string{""}, u["Service"]["CapabilityBoundingSet"], "elevate.service: CapabilityBoundingSet= (none)")
	for key, addr := range map[string]string{"proxy_addr": c.ProxyAddr, "control_addr": c.ControlAddr} {
		require.GreaterOrEqual(t, portOf(t, addr), 1024, "systemd: %s: a port below 1024 needs CAP_NET_BIND_SERVICE", key)
	}

	for key, want := range map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"UMask":                   "0077",
	} {
		require.Equal(t, want, u.one(t, "Service", key), "elevate.service: %s", key)
	}
	families := strings.Fields(u.one(t, "Service", "RestrictAddressFamilies"))
	require.Subset(t, families, []string{"AF_INET", "AF_INET6"})
	require.NotEmpty(t, u["Service"]["SystemCallFilter"])

	// systemctl reload sends SIGHUP, which re-reads policy.dirs.
	require.NotEmpty(t, c.Policy.Dirs)
	require.Equal(t, "/bin/kill -HUP $MAINPID", u.one(t, "Service", "ExecReload"))
}

// TestDeployReadme: deploy/README.md mentions every asset.
func TestDeployReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(deployDir, "README.md"))
	require.NoError(t, err)
	err = filepath.WalkDir(deployDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "jaeger" || d.Name() == "keys" {
				return filepath.SkipDir
			}
			return nil
		}
		if name := d.Name(); name != "README.md" && name != ".gitignore" {
			require.True(t, strings.Contains(string(readme), name), "deploy/README.md does not mention %s", p)
		}
		return nil
	})
	require.NoError(t, err)
}
