package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// kubectl through elevate: `elevate kubeconfig` writes a context whose
// cluster is a kubernetes upstream's route on the proxy listener and whose
// user runs `elevate credential kubernetes`, which prints the token as an
// ExecCredential. The kubeconfig never holds a token.

const (
	// execAPIVersion is the version of the exec credential protocol
	// spoken with kubectl.
	execAPIVersion = "client.authentication.k8s.io/v1"
	// kubeDevTokenTTL is the lifetime of a token --dev-subject mints.
	// kubectl runs the plugin again once it expires.
	kubeDevTokenTTL = 15 * time.Minute
)

// tokenSource is where `credential kubernetes` takes the token from when
// --token and ELEVATE_TOKEN are not set: a file, or the dev issuer.
type tokenSource struct {
	file       string
	devSubject string
	devGroups  []string
	dataDir    string
}

func (s *tokenSource) addFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&s.file, "token-file", "", "read the token from this file, again at every use (surrounding white space is ignored)")
	f.StringVar(&s.devSubject, "dev-subject", "", "mint a 15-minute token for this subject with the dev issuer of serve --dev")
	f.StringSliceVar(&s.devGroups, "dev-groups", nil, "groups of the --dev-subject token, comma-separated")
	dataDirFlag(c, &s.dataDir, "data directory of serve --dev, whose dev issuer --dev-subject uses")
	_ = c.MarkFlagFilename("token-file")
	_ = c.MarkFlagDirname("data-dir")
}

// check refuses flag values that cannot work.
func (s *tokenSource) check(cmd *cobra.Command) error {
	if cmd.Flags().Changed("dev-subject") && strings.TrimSpace(s.devSubject) == "" {
		return usageError("--dev-subject: must not be blank")
	}
	if cmd.Flags().Changed("token-file") && s.file == "" {
		return usageError("--token-file: must not be empty")
	}
	if len(s.devGroups) > 0 && s.devSubject == "" {
		return usageError("--dev-groups: only with --dev-subject")
	}
	return nil
}

// token is the token of the first source set: g's --token (or
// ELEVATE_TOKEN), --token-file, --dev-subject; "" when none is. Errors
// never quote the token or the file's content.
func (s *tokenSource) token(g *globals) (string, error) {
	switch {
	case g.token != "":
		return g.token, nil
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %v", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--token-file: %s is empty", s.file)
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			return "", fmt.Errorf("--token-file: %s holds more than the token (white space inside)", s.file)
		}
		return tok, nil
	case s.devSubject != "":
		return mintDevToken(s.dataDir, identity.DevToken{Subject: s.devSubject, Groups: s.devGroups, TTL: kubeDevTokenTTL, Now: time.Now()})
	}
	return "", nil
}

// noTokenError says the three ways to give a token.
func noTokenError() error {
	return usageError("no token: set --token or ELEVATE_TOKEN, give --token-file FILE, or --dev-subject NAME (serve --dev)")
}

func credentialCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "credential",
		Short: "Print your token in the form a tool's credential helper protocol asks for",
	}
	c.AddCommand(credentialKubernetesCmd(g))
	return c
}

// execCredential is the answer of a client.authentication.k8s.io/v1 exec
// plugin.
type execCredential struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Status     execCredentialStatus `json:"status"`
}

type execCredentialStatus struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
}

func credentialKubernetesCmd(g *globals) *cobra.Command {
	var src tokenSource
	c := &cobra.Command{
		Use:   "kubernetes [--token-file FILE | --dev-subject NAME [--dev-groups a,b]] [--data-dir DIR]",
		Short: "Print your token as a Kubernetes ExecCredential (kubectl's exec plugin; see elevate kubeconfig)",
		Long: "Prints a " + execAPIVersion + " ExecCredential holding your token, for kubectl to send to\n" +
			"a kubernetes upstream on the elevate proxy; elevate kubeconfig writes the kubeconfig entry\n" +
			"that runs it. The token is the first of: --token or ELEVATE_TOKEN; the content of\n" +
			"--token-file; a 15-minute token --dev-subject mints with the dev issuer of serve --dev.\n" +
			"The credential expires when the token does, and kubectl then runs the command again.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// KUBERNETES_EXEC_INFO, which kubectl sets, says nothing the
			// answer depends on.
			if err := src.check(cmd); err != nil {
				return err
			}
			tok, err := src.token(g)
			if err != nil {
				return err
			}
			if tok == "" {
				return noTokenError()
			}
			cred := execCredential{APIVersion: execAPIVersion, Kind: "ExecCredential", Status: execCredentialStatus{Token: tok}}
			if exp, ok := unverifiedClaims(tok).expiry(); ok {
				cred.Status.ExpirationTimestamp = exp.UTC().Format(time.RFC3339)
			}
			return printJSON(cmd.OutOrStdout(), cred)
		},
	}
	src.addFlags(c)
	return c
}

func kubeconfigCmd(g *globals) *cobra.Command {
	var (
		upstream, file, contextName, namespace, proxyCA, proxyURL string
		noSwitch                                                  bool
		src                                                       tokenSource
	)
	c := &cobra.Command{
		Use:   "kubeconfig --upstream NAME [--kubeconfig FILE] [--context NAME] [--namespace NS] [--token-file FILE | --dev-subject NAME] [--no-switch]",
		Short: "Add a kubectl context for a kubernetes upstream, through the elevate proxy",
		Long: "Writes into your kubeconfig a cluster, a user and a context, each named elevate-NAME\n" +
			"(or --context): the cluster is the upstream's route on the elevate proxy, the user runs\n" +
			"elevate credential kubernetes to hand kubectl your token. Entries of the same name are\n" +
			"replaced; everything else in the file is kept. No token is written: the user runs\n" +
			"this elevate binary with --token-file or --dev-subject when given, else it reads\n" +
			"ELEVATE_TOKEN from kubectl's environment.\n\n" +
			"  elevate kubeconfig --upstream prod --token-file ~/.config/elevate/token\n" +
			"  kubectl --context elevate-prod get pods",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(upstream) == "" {
				return usageError("--upstream: required (elevate connect and elevate task list name the upstreams)")
			}
			if err := src.check(cmd); err != nil {
				return err
			}
			if src.file != "" && src.devSubject != "" {
				return usageError("give --token-file or --dev-subject, not both")
			}
			if contextName == "" {
				contextName = "elevate-" + upstream
			}
			if file == "" {
				var err error
				if file, err = defaultKubeconfig(); err != nil {
					return usageError("--kubeconfig: %v", err)
				}
			}
			if proxyCA == "" {
				proxyCA = g.caFile
			}

			// The token to ask the server with, when --token is not given.
			tok, err := src.token(g)
			if err != nil {
				return err
			}
			asker := *g
			asker.token = tok
			info, err := fetch[upstreamsAnswer](cmd, &asker, "GET", "/v1/upstreams", nil)
			if err != nil {
				return err
			}
			up, err := info.kubernetes(upstream)
			if err != nil {
				return err
			}
			if proxyURL == "" {
				proxyURL = info.ProxyURL
			}
			u, err := url.Parse(proxyURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				if cmd.Flags().Changed("proxy") {
					return usageError("--proxy: %q is not an http(s) URL", proxyURL)
				}
				return fmt.Errorf("the server reports the proxy at %q, not an http(s) URL; give --proxy URL", proxyURL)
			}
			cluster := kubeCluster{Server: strings.TrimSuffix(proxyURL, "/") + strings.TrimSuffix(up.Prefix, "/")}
			if u.Scheme == "https" && proxyCA != "" {
				pemBytes, err := os.ReadFile(proxyCA)
				if err != nil {
					return usageError("--proxy-ca-file: %v", err)
				}
				if !x509.NewCertPool().AppendCertsFromPEM(pemBytes) {
					return usageError("--proxy-ca-file: %s holds no PEM certificate", proxyCA)
				}
				cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(pemBytes)
			}
			exec, err := execUser(src)
			if err != nil {
				return err
			}
			e := kubeEntry{name: contextName, cluster: cluster, user: kubeUser{Exec: exec},
				context: kubeContext{Cluster: contextName, User: contextName, Namespace: namespace}}
			written, err := mergeKubeconfigFile(file, e, !noSwitch)
			if err != nil {
				return err
			}
			verb := "added"
			if !noSwitch {
				verb = "added and switched to"
			}
			how := ""
			if src.file == "" && src.devSubject == "" {
				how = " (the token comes from ELEVATE_TOKEN in kubectl's environment)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s context %s for upstream %s (server %s) in %s%s; use: kubectl --context %s get pods\n",
				verb, contextName, up.Name, cluster.Server, written, how, shellQuote(contextName))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&upstream, "upstream", "", "the kubernetes upstream (GET /v1/upstreams lists them)")
	f.StringVar(&file, "kubeconfig", "", "kubeconfig file to write (default: the first of $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&contextName, "context", "", "name of the context, cluster and user (default: elevate-UPSTREAM)")
	f.StringVar(&namespace, "namespace", "", "the context's default namespace")
	f.StringVar(&proxyCA, "proxy-ca-file", "", "PEM certificates an https proxy listener chains to, written into the cluster (default: --ca-file)")
	f.StringVar(&proxyURL, "proxy", "", "the elevate proxy's URL (default: as the server reports it)")
	f.BoolVar(&noSwitch, "no-switch", false, "leave current-context as it is")
	src.addFlags(c)
	_ = c.RegisterFlagCompletionFunc("upstream", completeUpstreams(g))
	_ = c.MarkFlagFilename("kubeconfig")
	_ = c.MarkFlagFilename("proxy-ca-file")
	return c
}

// upstreamsAnswer is the answer of GET /v1/upstreams.
type upstreamsAnswer struct {
	ProxyURL  string             `json:"proxy_url"`
	Upstreams []api.UpstreamInfo `json:"upstreams"`
}

// kubernetes is the kubernetes upstream called name, or an error that
// names those there are.
func (a upstreamsAnswer) kubernetes(name string) (api.UpstreamInfo, error) {
	var kube []string
	for _, u := range a.Upstreams {
		if u.Type == proxy.TypeKubernetes {
			kube = append(kube, u.Name)
		}
	}
	slices.Sort(kube)
	known := "the server has no kubernetes upstream"
	if len(kube) > 0 {
		known = "kubernetes upstreams: " + strings.Join(kube, ", ")
	}
	for _, u := range a.Upstreams {
		if u.Name != name {
			continue
		}
		switch {
		case u.Type != proxy.TypeKubernetes:
			return u, exitError{code: exitFailed, msg: fmt.Sprintf("--upstream: %q is of type %s, not kubernetes; %s", name, u.Type, known)}
		case u.Prefix == "":
			return u, exitError{code: exitFailed, msg: fmt.Sprintf("--upstream: %q has no prefix on the proxy (only hosts), and kubectl reaches a cluster by URL; give it a prefix", name)}
		}
		return u, nil
	}
	msg := "--upstream: no upstream named " + strconv.Quote(name)
	if near := policy.Nearest(kube, name); near != "" {
		msg += `; did you mean "` + near + `"?`
	}
	return api.UpstreamInfo{}, exitError{code: exitFailed, msg: msg + "; " + known}
}

// execUser is the exec plugin that runs this binary's credential
// kubernetes with src's flags. Only names of files and directories and the
// dev subject go into the kubeconfig, never a token.
func execUser(src tokenSource) (kubeExec, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err != nil {
		return kubeExec{}, fmt.Errorf("finding this elevate binary for the kubeconfig: %v", err)
	}
	e := kubeExec{
		APIVersion:      execAPIVersion,
		Command:         exe,
		Args:            []string{"credential", "kubernetes"},
		InstallHint:     "kubectl runs " + exe + " to get your token; run elevate kubeconfig again if elevate moved",
		InteractiveMode: "Never",
	}
	switch {
	case src.file != "":
		abs, err := filepath.Abs(src.file)
		if err != nil {
			return kubeExec{}, usageError("--token-file: %v", err)
		}
		e.Args = append(e.Args, "--token-file", abs)
	case src.devSubject != "":
		e.Args = append(e.Args, "--dev-subject", src.devSubject)
		if len(src.devGroups) > 0 {
			e.Args = append(e.Args, "--dev-groups", strings.Join(src.devGroups, ","))
		}
		abs, err := filepath.Abs(src.dataDir)
		if err != nil {
			return kubeExec{}, usageError("--data-dir: %v", err)
		}
		e.Env = []kubeExecEnv{{Name: "ELEVATE_DATA_DIR", Value: abs}}
	}
	return e, nil
}

// defaultKubeconfig is the file kubectl reads first: the first path in
// $KUBECONFIG, else ~/.kube/config.
func defaultKubeconfig() (string, error) {
	for _, p := range filepath.SplitList(os.Getenv("KUBECONFIG")) {
		if p != "" {
			return p, nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".kube", "config"), nil
}

// The kubeconfig entries elevate writes, in the order kubectl writes
// their keys.

type kubeCluster struct {
	Server                   string `yaml:"server"`
	CertificateAuthorityData string `yaml:"certificate-authority-data,omitempty"`
}

type kubeContext struct {
	Cluster   string `yaml:"cluster"`
	User      string `yaml:"user"`
	Namespace string `yaml:"namespace,omitempty"`
}

type kubeUser struct {
	Exec kubeExec `yaml:"exec"`
}

type kubeExec struct {
	APIVersion         string        `yaml:"apiVersion"`
	Command            string        `yaml:"command"`
	Args               []string      `yaml:"args"`
	Env                []kubeExecEnv `yaml:"env,omitempty"`
	InstallHint        string        `yaml:"installHint,omitempty"`
	ProvideClusterInfo bool          `yaml:"provideClusterInfo"`
	InteractiveMode    string        `yaml:"interactiveMode"`
}

type kubeExecEnv struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// kubeEntry is a cluster, a user and a context, all called name.
type kubeEntry struct {
	name    string
	cluster kubeCluster
	user    kubeUser
	context kubeContext
}

// mergeKubeconfigFile merges e into the kubeconfig file (see
// mergeKubeconfig) and writes it back, 0600, by renaming a new file over
// it. It returns the path written: the file a symbolic link points to.
func mergeKubeconfigFile(file string, e kubeEntry, switchTo bool) (string, error) {
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("--kubeconfig: %v", err)
	}
	b, err := mergeKubeconfig(old, e, switchTo)
	if err != nil {
		return "", fmt.Errorf("--kubeconfig: %s: %v", file, err)
	}
	if err := writeFileAtomic(file, b); err != nil {
		return "", fmt.Errorf("--kubeconfig: %v", err)
	}
	return file, nil
}

// mergeKubeconfig puts e's cluster, user and context into the kubeconfig
// old (empty: a new one), replacing the entries of the same names, and
// sets current-context to e when switchTo. Every other entry, key and
// comment stays as it was.
func mergeKubeconfig(old []byte, e kubeEntry, switchTo bool) ([]byte, error) {
	var doc yaml.Node
	if len(bytes.TrimSpace(old)) > 0 {
		if err := yaml.Unmarshal(old, &doc); err != nil {
			return nil, fmt.Errorf("not YAML: %v", err)
		}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("not a kubeconfig: the document is not a mapping")
	}
	if mapValue(root, "apiVersion") == nil {
		setMapValue(root, "apiVersion", scalar("v1"))
	}
	if mapValue(root, "kind") == nil {
		setMapValue(root, "kind", scalar("Config"))
	}
	for _, item := range []struct {
		list, key string
		v         any
	}{{"clusters", "cluster", e.cluster}, {"contexts", "context", e.context}, {"users", "user", e.user}} {
		var v yaml.Node
		if err := v.Encode(item.v); err != nil {
			return nil, err
		}
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{scalar("name"), scalar(e.name), scalar(item.key), &v}}
		if err := upsertNamed(root, item.list, e.name, n); err != nil {
			return nil, err
		}
	}
	if switchTo {
		setMapValue(root, "current-context", scalar(e.name))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// upsertNamed puts entry into root's list key in place of the first item
// called name, dropping any other item of that name, or at its end.
func upsertNamed(root *yaml.Node, key, name string, entry *yaml.Node) error {
	list := mapValue(root, key)
	if list == nil || isNull(list) {
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setMapValue(root, key, list)
	}
	if list.Kind != yaml.SequenceNode {
		return fmt.Errorf("not a kubeconfig: %s is not a list", key)
	}
	out := list.Content[:0]
	placed := false
	for _, item := range list.Content {
		if n := mapValue(item, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value == name {
			if !placed {
				out = append(out, entry)
				placed = true
			}
			continue
		}
		out = append(out, item)
	}
	if !placed {
		out = append(out, entry)
	}
	list.Content = out
	list.Style &^= yaml.FlowStyle // an empty [] becomes a block list
	return nil
}

// mapValue is the value of key in the mapping m; nil when m is no mapping
// or lacks key.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMapValue sets key in the mapping m to v, in place when m has it.
func setMapValue(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// writeFileAtomic writes b to path, mode 0600, through a file in the same
// directory renamed over it, so that a reader sees the old file or the new
// one. Missing directories are made 0700.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
