package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runConfig is what `driver run` is told.
type runConfig struct {
	repo, work, out                           string
	elevateBin, opaBin, nginxBin, wrkBin, goB string
	quick, keepWork                           bool

	warm, loadDur, singleDur, scaleDur time.Duration
	trials, fillGrants, fillPolicies   int
	startRuns                          int
	benchtime                          string
	throughputOnly                     bool

	// kubeDir holds kube-apiserver and kubectl; empty: no Kubernetes
	// measurement. kubeCalls is the number of kubectl calls of each way.
	kubeDir        string
	kubeCalls      int
	kubernetesOnly bool
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c runConfig
	fs.StringVar(&c.repo, "repo", ".", "the repository's root")
	fs.StringVar(&c.work, "work", "", "work directory (default: a new temporary one, removed at the end)")
	fs.StringVar(&c.out, "out", "bench/results/latest.md", "where the report is written")
	fs.StringVar(&c.elevateBin, "elevate", "bin/elevate", "elevate binary")
	fs.StringVar(&c.opaBin, "opa", "opa", "OPA binary")
	fs.StringVar(&c.nginxBin, "nginx", "nginx", "nginx binary")
	fs.StringVar(&c.wrkBin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&c.goB, "go", "go", "go command, for the Go benchmarks")
	fs.BoolVar(&c.quick, "quick", false, "short durations and few trials, to check the harness end to end")
	fs.BoolVar(&c.keepWork, "keep-work", false, "keep the work directory (logs, configs, audit logs)")
	fs.BoolVar(&c.throughputOnly, "throughput-only", false, "measure throughput and latency only, for a quick comparison while tuning")
	fs.StringVar(&c.kubeDir, "kubernetes", "", "directory holding kube-apiserver and kubectl (test/e2e/kubernetes.sh prints it); empty: no kubectl measurement")
	fs.BoolVar(&c.kubernetesOnly, "kubernetes-only", false, "measure kubectl directly and through elevate only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.kubernetesOnly && c.kubeDir == "" {
		return errors.New("--kubernetes-only needs --kubernetes DIR")
	}
	c.kubeCalls = 200
	c.warm, c.loadDur, c.singleDur, c.scaleDur = 3*time.Second, 15*time.Second, 10*time.Second, 8*time.Second
	c.trials, c.fillGrants, c.fillPolicies, c.startRuns = 200, 100_000, 1000, 5
	c.benchtime = "1s"
	if c.quick {
		c.warm, c.loadDur, c.singleDur, c.scaleDur = time.Second, 2*time.Second, 2*time.Second, 2*time.Second
		c.trials, c.fillGrants, c.fillPolicies, c.startRuns = 20, 5_000, 100, 2
		c.benchtime = "100ms"
		c.kubeCalls = 20
	}
	for _, p := range []*string{&c.repo, &c.out, &c.elevateBin, &c.kubeDir} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	removeWork := false
	if c.work == "" {
		dir, err := os.MkdirTemp("", "elevate-bench-")
		if err != nil {
			return err
		}
		c.work, removeWork = dir, !c.keepWork
	}
	h := &harness{cfg: c, ps: &procs{dir: c.work}, rep: newReport(c)}
	err := h.run(ctx)
	h.ps.stopAll()
	// A failed run keeps its logs for a look; an interrupted one does not.
	if removeWork && (err == nil || ctx.Err() != nil) {
		_ = os.RemoveAll(c.work)
	} else {
		fmt.Fprintln(os.Stderr, "bench: work directory kept:", c.work)
	}
	return err
}

// harness holds what one run started and measured.
type harness struct {
	cfg runConfig
	ps  *procs
	rep *report
	iss *issuer

	// Ports and children.
	upstreamURL, revproxyURL, otlpURL, etcdURL, nginxURL, opaURL string
	upstream, revproxy, otlp, etcd, opa, nginx                   *proc
	a, b                                                         *elevateInstance
	bundleDir                                                    string
	devAddrs                                                     [2]string // proxy and control of `serve --dev`

	// Tokens and state.
	admin, alice   string
	fillPolicyID   string
	basePolicies   int
	baseGrants     int
	tokenCache     map[string]string
	stepStart      time.Time
	currentStep    string
	wrk            wrk
	hotGrantExpiry time.Time
}

// step marks the start of a phase, for the report's account of where the
// harness spends its time.
func (h *harness) step(name string) {
	now := time.Now()
	if h.currentStep != "" {
		h.rep.Steps = append(h.rep.Steps, stepTime{Name: h.currentStep, Took: now.Sub(h.stepStart)})
	}
	h.currentStep, h.stepStart = name, now
	if name != "" {
		fmt.Fprintf(os.Stderr, "bench: %s\n", name)
	}
}

func (h *harness) run(ctx context.Context) error {
	defer h.step("")
	h.rep.Started = time.Now()
	h.rep.Machine = readMachine(ctx, h.cfg.goB)
	if !h.cfg.kubernetesOnly {
		h.rep.Machine.Tools = toolVersions(ctx, h.cfg)
	}
	if h.cfg.kubeDir != "" && !h.cfg.throughputOnly {
		h.rep.Machine.Tools = append(h.rep.Machine.Tools, kubeVersions(ctx, h.cfg.kubeDir)...)
	}
	disk, err := probeDisk(h.cfg.work, 200)
	if err != nil {
		return err
	}
	h.rep.Disk = disk
	h.wrk = wrk{bin: h.cfg.wrkBin, script: filepath.Join(h.cfg.repo, "bench", "post.lua")}
	h.tokenCache = map[string]string{}

	if h.cfg.kubernetesOnly {
		h.step("kubectl directly and through elevate: etcd, kube-apiserver, elevate, kubectl get pods")
		if err := h.kubernetes(ctx); err != nil {
			return err
		}
		h.step("")
		h.rep.Finished = time.Now()
		h.rep.LoadAfter = loadAverage()
		return h.rep.write(h.cfg.out)
	}
	h.step("start etcd, upstream, httputil proxy, OTLP receiver, elevate")
	if err := h.startBase(ctx); err != nil {
		return err
	}
	h.step("set up access control, policies and grants through elevate's side API")
	if err := h.setupElevate(ctx); err != nil {
		return err
	}
	h.step("start OPA and nginx")
	if err := h.startComposite(ctx); err != nil {
		return err
	}
	h.step("throughput and latency (wrk)")
	if err := h.throughput(ctx); err != nil {
		return err
	}
	h.ps.stop(h.nginx)
	h.ps.stop(h.opa)
	h.ps.stop(h.revproxy)
	if h.cfg.throughputOnly {
		h.step("")
		h.rep.Finished = time.Now()
		h.rep.LoadAfter = loadAverage()
		return h.rep.write(h.cfg.out)
	}

	h.step("grant propagation between two elevate instances")
	if err := h.propagation(ctx); err != nil {
		return err
	}
	h.step("per-call cost and memory as policies and grants grow")
	if err := h.scale(ctx); err != nil {
		return err
	}
	h.ps.stopAll()

	h.step("start-up of elevate serve --dev")
	if err := h.startup(ctx); err != nil {
		return err
	}
	if h.cfg.kubeDir != "" {
		h.step("kubectl directly and through elevate: etcd, kube-apiserver, elevate, kubectl get pods")
		if err := h.kubernetes(ctx); err != nil {
			return err
		}
		h.ps.stopAll()
	}
	h.step("Go benchmarks")
	goErr := h.goBenchmarks(ctx)
	h.step("")
	h.rep.Finished = time.Now()
	h.rep.LoadAfter = loadAverage()
	if err := h.rep.write(h.cfg.out); err != nil {
		return err
	}
	return goErr
}

// token returns a cached token for sub in groups, valid for the whole run.
func (h *harness) token(sub string, groups ...string) (string, error) {
	key := sub + "|" + strings.Join(groups, ",")
	if t, ok := h.tokenCache[key]; ok {
		return t, nil
	}
	t, err := h.iss.token(sub, groups, 3*time.Hour)
	if err != nil {
		return "", err
	}
	h.tokenCache[key] = t
	return t, nil
}

func (h *harness) startBase(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ports, err := freePorts(13)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	h.upstreamURL, h.revproxyURL, h.otlpURL = "http://"+addr(0), "http://"+addr(1), "http://"+addr(2)
	h.etcdURL = "http://" + addr(3)
	h.opaURL, h.nginxURL = "http://"+addr(9), "http://"+addr(10)
	h.a = &elevateInstance{name: "elevate-a", proxyURL: "http://" + addr(5), apiURL: "http://" + addr(6)}
	h.b = &elevateInstance{name: "elevate-b", proxyURL: "http://" + addr(7), apiURL: "http://" + addr(8)}
	h.devAddrs = [2]string{addr(11), addr(12)}

	if h.etcd, err = h.ps.start("etcd", nil, self, "etcd", "--addr", addr(3), "--peer", addr(4), "--dir", filepath.Join(h.cfg.work, "etcd")); err != nil {
		return err
	}
	if h.otlp, err = h.ps.start("otlp", nil, self, "otlp", "--addr", addr(2)); err != nil {
		return err
	}
	if h.upstream, err = h.ps.start("upstream", nil, self, "upstream", "--addr", addr(0)); err != nil {
		return err
	}
	if h.revproxy, err = h.ps.start("revproxy", nil, self, "revproxy", "--addr", addr(1), "--target", h.upstreamURL); err != nil {
		return err
	}
	for _, w := range []struct {
		p   *proc
		url string
	}{{h.etcd, h.etcdURL + "/health"}, {h.otlp, h.otlpURL + "/stats"}, {h.upstream, h.upstreamURL + "/"}, {h.revproxy, h.revproxyURL + "/"}} {
		if err := waitHTTP(ctx, w.p, w.url, 30*time.Second, status200); err != nil {
			return err
		}
	}

	keys := filepath.Join(h.cfg.work, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return err
	}
	if h.iss, err = newIssuer(keys); err != nil {
		return err
	}
	h.bundleDir = filepath.Join(h.cfg.work, "bundle")
	if err := writeBundle(h.bundleDir, filepath.Join(h.cfg.repo, "bench", "policy", "bench.rego")); err != nil {
		return err
	}
	return h.startElevate(ctx, h.a)
}

// startElevate writes inst's configuration and runs `elevate serve` with
// spans exported to the OTLP receiver, until /readyz answers 200.
func (h *harness) startElevate(ctx context.Context, inst *elevateInstance) error {
	inst.dataDir = filepath.Join(h.cfg.work, inst.name)
	if err := os.MkdirAll(inst.dataDir, 0o700); err != nil {
		return err
	}
	cfg, err := elevateConfig(inst.dataDir, strings.TrimPrefix(inst.proxyURL, "http://"), strings.TrimPrefix(inst.apiURL, "http://"),
		h.etcdURL, h.iss.pubFile, h.bundleDir, h.upstreamURL)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(h.cfg.work, inst.name+".yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return err
	}
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + h.otlpURL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}
	if inst.proc, err = h.ps.start(inst.name, env, h.cfg.elevateBin, "serve", "--config", cfgPath); err != nil {
		return err
	}
	return waitHTTP(ctx, inst.proc, inst.apiURL+"/readyz", 60*time.Second, status200)
}

// setupElevate follows Microsoft 365 PAM's four steps through elevate's
// side API: enable access control with an approver group, create the
// policies (Bench\Invoke-Call manual, nine more tasks auto), then alice
// requests the hot task and an approver approves; nine other users get
// auto-approved grants, for ten live grants in all.
func (h *harness) setupElevate(ctx context.Context) error {
	var err error
	if h.admin, err = h.token("ada", adminGroup); err != nil {
		return err
	}
	if h.alice, err = h.token("alice"); err != nil {
		return err
	}
	approver, err := h.token("appr-00", approverGroup)
	if err != nil {
		return err
	}
	api := newAPIClient(h.a.apiURL)
	if err := api.enable(ctx, h.admin); err != nil {
		return err
	}
	if _, err := api.createPolicy(ctx, h.admin, hotTask, "manual"); err != nil {
		return err
	}
	for i := 1; i <= 9; i++ {
		p, err := api.createPolicy(ctx, h.admin, fmt.Sprintf(fillTaskFormat, i), "auto")
		if err != nil {
			return err
		}
		if i == 1 {
			h.fillPolicyID = p.ID
		}
	}
	h.basePolicies = 10
	req, err := api.submit(ctx, h.alice, hotTask)
	if err != nil {
		return err
	}
	if req, err = api.decide(ctx, approver, req.ID, "approve"); err != nil {
		return err
	}
	if req.Status != "approved" {
		return fmt.Errorf("alice's request is %s after approval", req.Status)
	}
	for i := 1; i <= 9; i++ {
		tok, err := h.token(fmt.Sprintf("fill-%d", i))
		if err != nil {
			return err
		}
		if _, err := api.submit(ctx, tok, fmt.Sprintf(fillTaskFormat, 1)); err != nil {
			return err
		}
	}
	h.baseGrants = 10
	h.hotGrantExpiry = time.Now().Add(4 * time.Hour)
	return waitCall(ctx, h.a.proxyURL+"/bench/call", h.alice, http.StatusOK, 30*time.Second)
}

// startComposite starts OPA with the composite's policy and data, then
// nginx with njs in front of it.
func (h *harness) startComposite(ctx context.Context) error {
	grants := map[string]any{
		"alice": []map[string]any{{"task": hotTask, "not_before_ns": time.Now().Add(-time.Minute).UnixNano(), "expires_at_ns": h.hotGrantExpiry.UnixNano()}},
	}
	for i := 1; i <= 9; i++ {
		grants[fmt.Sprintf("fill-%d", i)] = []map[string]any{{"task": fmt.Sprintf(fillTaskFormat, 1),
			"not_before_ns": time.Now().Add(-time.Minute).UnixNano(), "expires_at_ns": h.hotGrantExpiry.UnixNano()}}
	}
	data, err := json.Marshal(map[string]any{"bench": map[string]any{
		"public_key": string(h.iss.pubPEM), "issuer": issuerName, "audience": audience, "grants": grants,
	}})
	if err != nil {
		return err
	}
	dataFile := filepath.Join(h.cfg.work, "opa-data.json")
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		return err
	}
	opaDir := filepath.Join(h.cfg.repo, "bench", "opa")
	if h.opa, err = h.ps.start("opa", nil, h.cfg.opaBin, "run", "--server", "--disable-telemetry",
		"--addr", strings.TrimPrefix(h.opaURL, "http://"), "--log-level", "error",
		"--config-file", filepath.Join(opaDir, "config.yaml"),
		filepath.Join(opaDir, "authz.rego"), dataFile); err != nil {
		return err
	}
	if err := waitHTTP(ctx, h.opa, h.opaURL+"/health", 60*time.Second, status200); err != nil {
		return err
	}

	tmpl, err := os.ReadFile(filepath.Join(h.cfg.repo, "bench", "nginx", "nginx.conf"))
	if err != nil {
		return err
	}
	conf := strings.NewReplacer(
		"@WORK@", h.cfg.work,
		"@NJS_DIR@", filepath.Join(h.cfg.repo, "bench", "nginx"),
		"@UPSTREAM_PORT@", portOf(h.upstreamURL),
		"@OPA_PORT@", portOf(h.opaURL),
		"@PORT@", portOf(h.nginxURL),
	).Replace(string(tmpl))
	confPath := filepath.Join(h.cfg.work, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	if h.nginx, err = h.ps.start("nginx", nil, h.cfg.nginxBin, "-p", h.cfg.work, "-c", confPath, "-e", filepath.Join(h.cfg.work, "nginx-error.log")); err != nil {
		return err
	}
	if err := waitCall(ctx, h.nginxURL+"/call", h.alice, http.StatusOK, 30*time.Second); err != nil {
		return fmt.Errorf("nginx+OPA: %w\nnginx: %s", err, h.nginx.tail())
	}
	// The composite must refuse what elevate refuses.
	bob, err := h.token("bob")
	if err != nil {
		return err
	}
	if err := waitCall(ctx, h.nginxURL+"/call", bob, http.StatusForbidden, 5*time.Second); err != nil {
		return fmt.Errorf("nginx+OPA lets a caller without a grant through: %w", err)
	}
	return nil
}

func portOf(u string) string { return u[strings.LastIndex(u, ":")+1:] }

// waitCall POSTs to url with token until the answer has status want.
func waitCall(ctx context.Context, url, token string, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	last := ""
	for {
		status, err := post(ctx, hc, url, token)
		if err == nil && status == want {
			return nil
		}
		last = fmt.Sprintf("status %d, err %v", status, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("POST %s: want %d, last %s", url, want, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// post sends the benchmark's call and returns the answer's status.
func post(ctx context.Context, hc *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"reason":"benchmark"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sinkCounts reads the OTLP receiver's counters.
func (h *harness) sinkCounts(ctx context.Context) (sinkStats, error) {
	var s sinkStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.otlpURL+"/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, errors.New("OTLP receiver: " + resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}
