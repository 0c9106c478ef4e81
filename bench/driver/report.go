package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where the run happened.
type machine struct {
	CPU, Memory, Kernel, Go, Load string
	Cores                         int
	Tools                         []string
}

// stepTime is one phase of the harness and its wall time.
type stepTime struct {
	Name string
	Took time.Duration
}

// report collects a run's figures and writes them as markdown.
type report struct {
	cfg               runConfig
	Started, Finished time.Time
	Machine           machine
	Disk              diskInfo
	LoadAfter         string

	Targets      []targetResult
	SpanExport   sinkStats
	ElevateCalls int64
	Propagation  *propagationResult
	Scale        []scaleResult
	Startup      *startupResult
	Kubernetes   *kubeResult
	GoBench      []goBench
	GoBenchCmd   string
	GoBenchErr   string
	Steps        []stepTime
}

func newReport(c runConfig) *report { return &report{cfg: c} }

// readMachine reads the CPU, memory, kernel and tool versions.
func readMachine(ctx context.Context, goCmd string) machine {
	m := machine{Cores: runtime.NumCPU(), CPU: "unknown", Memory: "unknown", Kernel: "unknown", Load: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &kb); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Go = firstLine(ctx, goCmd, "version")
	return m
}

// toolVersions names the versions of the programs the run used.
func toolVersions(ctx context.Context, c runConfig) []string {
	return []string{
		"wrk: " + firstLine(ctx, c.wrkBin, "-v"),
		"nginx: " + firstLine(ctx, c.nginxBin, "-v") + ", njs " + dpkgVersion(ctx, "libnginx-mod-http-js"),
		"OPA: " + firstLine(ctx, c.opaBin, "version"),
	}
}

func firstLine(ctx context.Context, bin string, args ...string) string {
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}

func dpkgVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "unknown"
	}
	return string(out)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Goals of issue 7, measured in one run.
const (
	goalVsHTTPUtil    = 1.0
	goalVsNginxOPA    = 3.0
	goalAddedP50      = 100 * time.Microsecond
	goalAddedP99      = time.Millisecond
	goalPropagation   = 50 * time.Millisecond
	goalFlat          = 0.10
	goalBytesPerGrant = 1024
	goalAuditPerSec   = 20_000
	goalDevStart      = 2 * time.Second
)

func (r *report) target(name string) *targetResult {
	for i := range r.Targets {
		if r.Targets[i].Name == name {
			return &r.Targets[i]
		}
	}
	return nil
}

// markdown renders the report.
func (r *report) markdown() string {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.cfg.quick {
		mode = "quick (BENCH_QUICK=1: short runs, few trials; not for comparison)"
	}
	if r.cfg.kubernetesOnly {
		mode += ", kubectl only (BENCH_KUBERNETES_ONLY=1)"
	}
	p("# elevate benchmark\n\n")
	p("Run %s, %s, mode %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), fmtDur(r.Finished.Sub(r.Started)), mode)
	p("- Machine: %s, %d cores, %s memory, %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.Memory, r.Machine.Kernel)
	p("- %s\n", r.Machine.Go)
	for _, t := range r.Machine.Tools {
		p("- %s\n", t)
	}
	p("- Work directory (audit logs, etcd): %s file system on %s; a 256-byte append with fsync took %s (median), %s (p99) over %d tries\n",
		r.Disk.FS, r.Disk.Device, fmtDur(r.Disk.FsyncP50), fmtDur(r.Disk.FsyncP99), r.Disk.FsyncSamples)
	also := ", wrk included"
	if r.cfg.kubernetesOnly {
		also = ", kubectl included"
	}
	p("- Load average (1, 5, 15 min) before: %s; after: %s. Everything ran on this machine, on loopback%s.\n", r.Machine.Load, r.LoadAfter, also)
	var env []string
	if r.cfg.quick {
		env = append(env, "BENCH_QUICK=1")
	}
	if r.cfg.kubernetesOnly {
		env = append(env, "BENCH_KUBERNETES_ONLY=1")
	}
	env = append(env, "make bench")
	p("- Command: `%s`\n\n", strings.Join(env, " "))

	if len(r.Targets) > 0 {
		r.throughputMarkdown(&b)
		r.goalsMarkdown(&b)
	}
	r.restMarkdown(&b)
	return b.String()
}

// throughputMarkdown renders the wrk section.
func (r *report) throughputMarkdown(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Throughput and latency\n\n")
	p("wrk, keep-alive, `POST` with a small JSON body and `Authorization: Bearer` (an RS256 token), to the tiny upstream ")
	p("directly, through each proxy. Concurrent: 2 threads, 32 connections, %s after a %s warm-up. ", fmtDur(r.cfg.loadDur), fmtDur(r.cfg.warm))
	p("One connection: 1 thread, 1 connection, %s. CPU/call is the CPU time of the target's own processes (the upstream's for direct; ", fmtDur(r.cfg.singleDur))
	p("nginx and OPA together for the composite) per call under concurrent load.\n\n")
	p("| target | req/s | p50 | p90 | p99 | CPU/call | 1 conn p50 | 1 conn p99 |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, t := range r.Targets {
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", t.Name, fmtRPS(t.Concurrent.RPS), fmtDur(t.Concurrent.P50), fmtDur(t.Concurrent.P90),
			fmtDur(t.Concurrent.P99), fmtDur(t.CPUPerCall), fmtDur(t.Single.P50), fmtDur(t.Single.P99))
	}
	p("\n- elevate: token verification (RS256, verified-token cache on, its default), Rego (the default bundle plus `bench/policy/bench.rego`), ")
	p("the grant lookup (10 live grants, 10 approval policies), a durable audit record (fsync, group commit) before forwarding and an outcome record after, ")
	p("and the call's spans exported over OTLP/HTTP to a local receiver in the harness that discards them")
	if r.SpanExport.TraceRequests > 0 {
		p(" (%d export requests, %.1f MB, during the concurrent run)", r.SpanExport.TraceRequests, float64(r.SpanExport.TraceBytes)/1e6)
	}
	p(".\n")
	p("- nginx + njs + OPA: nginx `auth_request` to njs, which POSTs the call to OPA's REST API through a pooled upstream; ")
	p("the Rego (`bench/opa/authz.rego`) verifies the RS256 token with `io.jwt.decode_verify` (OPA's `io_jwt` cache on) and looks the grant up in OPA data. ")
	p("No audit: nginx's access log and OPA's decision log are off.\n")
	p("- httputil.ReverseProxy: no checks, up to 256 idle upstream connections.\n\n")
}

// goalsMarkdown renders the goals met and not.
func (r *report) goalsMarkdown(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Against the goals\n\n| measure | value | goal | met |\n|---|--:|--:|:-:|\n")
	direct, hu, el, ng := r.target(targetDirect), r.target(targetHTTPUtil), r.target(targetElevate), r.target(targetNginxOPA)
	if el != nil && hu != nil && hu.Concurrent.RPS > 0 {
		v := el.Concurrent.RPS / hu.Concurrent.RPS
		p("| throughput elevate / httputil | %.2f× | ≥ %.1f× | %s |\n", v, goalVsHTTPUtil, met(v >= goalVsHTTPUtil))
	}
	if el != nil && ng != nil && ng.Concurrent.RPS > 0 {
		v := el.Concurrent.RPS / ng.Concurrent.RPS
		p("| throughput elevate / nginx+OPA | %.2f× | ≥ %.1f× | %s |\n", v, goalVsNginxOPA, met(v >= goalVsNginxOPA))
	}
	if el != nil && direct != nil {
		a50, a99 := el.Single.P50-direct.Single.P50, el.Single.P99-direct.Single.P99
		p("| added latency vs direct, 1 conn, median | %s | ≤ %s | %s |\n", fmtDur(a50), fmtDur(goalAddedP50), met(a50 <= goalAddedP50))
		p("| added latency vs direct, 1 conn, p99 | %s | ≤ %s | %s |\n", fmtDur(a99), fmtDur(goalAddedP99), met(a99 <= goalAddedP99))
	}
	if pr := r.Propagation; pr != nil {
		a, v := percentile(pr.Approve, 99), percentile(pr.Revoke, 99)
		p("| propagation p99, approve → allowed | %s | ≤ %s | %s |\n", fmtDur(a), fmtDur(goalPropagation), met(a <= goalPropagation))
		p("| propagation p99, revoke → refused | %s | ≤ %s | %s |\n", fmtDur(v), fmtDur(goalPropagation), met(v <= goalPropagation))
	}
	if len(r.Scale) > 1 {
		base := r.Scale[0]
		for _, s := range r.Scale[1:] {
			d50 := change(float64(base.Single.P50), float64(s.Single.P50))
			drps := change(base.Concurrent.RPS, s.Concurrent.RPS)
			dcpu := change(float64(base.CPUPerCall), float64(s.CPUPerCall))
			p("| per-call cost (CPU/call), %s vs %s; 1 conn p50 / req/s for reference | %+.0f%%; %+.0f%% / %+.0f%% | within ±%.0f%% | %s |\n", s.Label, base.Label,
				100*dcpu, 100*d50, 100*drps, 100*goalFlat, met(base.CPUPerCall > 0 && math.Abs(dcpu) <= goalFlat))
		}
		if g, ok := r.bytesPerGrant(); ok {
			p("| memory per live grant (live heap) | %.0f B | ≤ %d B | %s |\n", g, goalBytesPerGrant, met(g <= goalBytesPerGrant))
		}
	}
	if rec, ok := r.auditRecordsPerSec(); ok {
		p("| durable audit records/s (Go benchmark) | %s | ≥ %s | %s |\n", fmtRPS(rec), fmtRPS(goalAuditPerSec), met(rec >= goalAuditPerSec))
	}
	if st := r.Startup; st != nil && len(st.Fresh) > 0 {
		f, e := percentile(st.Fresh, 50), percentile(st.Existing, 50)
		p("| dev start to ready, new data dir (median) | %s | ≤ %s | %s |\n", fmtDur(f), fmtDur(goalDevStart), met(f <= goalDevStart))
		p("| dev start to ready, existing data dir (median) | %s | ≤ %s | %s |\n", fmtDur(e), fmtDur(goalDevStart), met(e <= goalDevStart))
	}
	p("\n")
}

// restMarkdown renders the sections after the goals.
func (r *report) restMarkdown(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	el := r.target(targetElevate)

	if pr := r.Propagation; pr != nil {
		p("## Grant propagation\n\n")
		p("Two elevate instances on one etcd. Each of %d trials: a requester submits through instance A; an approver approves through A while %d callers ", pr.Trials, propagationPollers)
		p("call instance B without pause; the time is from sending the approval to the first allowed answer from B. Then the same for a revocation and the first refusal. ")
		p("Times include the side-API call itself; its own duration, and the time from its answer to B's, are shown apart.\n\n")
		p("| change | p50 | p99 | max | side-API call p50 | side-API call p99 | after A answered p50 | after A answered p99 |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, row := range []struct {
			name              string
			took, call, after []time.Duration
		}{
			{"approve → first allowed at B", pr.Approve, pr.ApproveCall, pr.ApproveAfter},
			{"revoke → first refused at B", pr.Revoke, pr.RevokeCall, pr.RevokeAfter},
		} {
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.name, fmtDur(percentile(row.took, 50)), fmtDur(percentile(row.took, 99)),
				fmtDur(percentile(row.took, 100)), fmtDur(percentile(row.call, 50)), fmtDur(percentile(row.call, 99)),
				fmtDur(percentile(row.after, 50)), fmtDur(percentile(row.after, 99)))
		}
		if pr.Timeouts > 0 {
			p("\n%d changes were not seen at B within %s (counted as %s).\n", pr.Timeouts, fmtDur(propagationTimeout), fmtDur(propagationTimeout))
		}
		p("\n")
	}

	if len(r.Scale) > 0 {
		p("## Scale: grants and policies\n\n")
		p("Instance A alone (B stopped), loaded as above for %s at 32 connections and %s at one. Live heap is half the Go heap goal ", fmtDur(r.cfg.scaleDur), fmtDur(r.cfg.scaleDur))
		p("(`go_memstats_next_gc_bytes`, GOGC 100), the heap that survived the last collection; RSS is `process_resident_memory_bytes`. ")
		p("Extra policies (auto approval, on `Bench\\Task-NNNN`) and grants (one per user, through an auto-approval policy) are written with the ")
		p("grants package straight to etcd, the policies then removed before the grants are added. ")
		p("The goal of a flat per-call cost is judged on CPU/call, elevate's CPU time per call under the concurrent load: ")
		p("the one-connection latency is mostly the audit log's fsync, which drifts with the disk between runs.\n\n")
		p("| state | live grants | policies | req/s | p99 | CPU/call | 1 conn p50 | 1 conn p99 | live heap | RSS | written at |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, s := range r.Scale {
			written := "—"
			if s.PreparedPerSec > 0 {
				written = fmtRPS(s.PreparedPerSec) + "/s"
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Label, thousands(s.Grants), thousands(s.Policies), fmtRPS(s.Concurrent.RPS),
				fmtDur(s.Concurrent.P99), fmtDur(s.CPUPerCall), fmtDur(s.Single.P50), fmtDur(s.Single.P99), fmtBytes(s.HeapLive), fmtBytes(s.RSS), written)
		}
		if g, ok := r.bytesPerGrant(); ok {
			last, base := r.Scale[len(r.Scale)-1], r.Scale[0]
			p("\nPer live grant: %.0f B of live heap, %.0f B of RSS.\n", g, (last.RSS-base.RSS)/float64(last.Grants-base.Grants))
		}
		p("\n")
	}

	rec, recOK := r.auditRecordsPerSec()
	if recOK || (el != nil && el.Concurrent.RPS > 0) {
		p("## Durable audit\n\n")
		if recOK {
			p("- `BenchmarkWrite` (audit, fsync on, group commit, 16 writers per CPU): %s records/s.\n", fmtRPS(rec))
		}
		if el != nil && el.Concurrent.RPS > 0 {
			p("- In the elevate run above: %s records/s made durable (a decision record and an outcome record per call).\n", fmtRPS(2*el.Concurrent.RPS))
		}
		p("\n")
	}

	if st := r.Startup; st != nil && len(st.Fresh) > 0 {
		p("## Start-up of `elevate serve --dev`\n\nFrom exec to the first 200 on `/readyz`, %d runs each.\n\n", len(st.Fresh))
		p("| data directory | median | max |\n|---|--:|--:|\n")
		p("| new (dev key, CA and etcd created) | %s | %s |\n", fmtDur(percentile(st.Fresh, 50)), fmtDur(percentile(st.Fresh, 100)))
		p("| existing | %s | %s |\n\n", fmtDur(percentile(st.Existing, 50)), fmtDur(percentile(st.Existing, 100)))
	}

	if k := r.Kubernetes; k != nil {
		r.kubernetesMarkdown(b, k)
	}

	if rows := r.reachRows(); len(rows) > 0 {
		p("## Routes and judged bodies\n\nFrom the Go benchmarks below: one decision against a route table of 10 and of 5,000 routes (goal: within 10 %%), and a whole proxied call whose body is judged (body: json) against the same call judged by its path.\n\n")
		p("| measure | baseline | compared | ratio |\n|---|--:|--:|--:|\n")
		for _, row := range rows {
			p("| %s | %s ns | %s ns | %.2f× |\n", row.name, fmtNum(row.base), fmtNum(row.other), row.other/row.base)
		}
		p("\n")
	}

	if r.GoBenchCmd != "" {
		p("## Go benchmarks\n\n`%s`\n\n", r.GoBenchCmd)
	}
	if r.GoBenchErr != "" {
		p("The Go benchmarks failed:\n\n```\n%s\n```\n\n", r.GoBenchErr)
	}
	if len(r.GoBench) > 0 {
		p("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|--:|--:|--:|---|\n")
		for _, g := range r.GoBench {
			var other []string
			for _, u := range g.Units {
				if u != "ns/op" && u != "B/op" && u != "allocs/op" {
					other = append(other, fmt.Sprintf("%s %s", fmtNum(g.Metrics[u]), u))
				}
			}
			p("| %s | %s | %s | %s | %s | %s |\n", g.Pkg, strings.TrimPrefix(g.Name, "Benchmark"), fmtNum(g.Metrics["ns/op"]),
				fmtNum(g.Metrics["B/op"]), fmtNum(g.Metrics["allocs/op"]), strings.Join(other, ", "))
		}
		p("\n")
	}

	if len(r.Steps) > 0 {
		p("## Where the harness spent its time\n\n| step | wall time |\n|---|--:|\n")
		for _, s := range r.Steps {
			p("| %s | %s |\n", s.Name, fmtDur(s.Took))
		}
		p("\n")
	}
}

// bytesPerGrant is the live heap added per grant between the first and the
// last scale state.
func (r *report) bytesPerGrant() (float64, bool) {
	if len(r.Scale) < 2 {
		return 0, false
	}
	base, last := r.Scale[0], r.Scale[len(r.Scale)-1]
	if last.Grants <= base.Grants {
		return 0, false
	}
	return (last.HeapLive - base.HeapLive) / float64(last.Grants-base.Grants), true
}

// auditRecordsPerSec is BenchmarkWrite's records/s.
func (r *report) auditRecordsPerSec() (float64, bool) {
	for _, g := range r.GoBench {
		if g.Pkg == "audit" && g.Name == "BenchmarkWrite" {
			v, ok := g.Metrics["records/s"]
			return v, ok
		}
	}
	return 0, false
}

// write saves the report to path and prints it.
func (r *report) write(path string) error {
	md := r.markdown()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	if r.Kubernetes != nil {
		var csv bytes.Buffer
		if err := writeKubeCSV(&csv, r.Kubernetes); err != nil {
			return err
		}
		if err := os.WriteFile(r.kubeCSVPath(), csv.Bytes(), 0o644); err != nil {
			return err
		}
	}
	fmt.Print(md)
	fmt.Fprintln(os.Stderr, "bench: report written to", path)
	return nil
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func change(from, to float64) float64 {
	if from == 0 {
		return 0
	}
	return to/from - 1
}

// fmtDur prints d with three significant digits in a fitting unit.
func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d == 0:
		s = "0"
	case d < time.Microsecond:
		s = fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		s = sig(float64(d)/1e3) + " µs"
	case d < time.Second:
		s = sig(float64(d)/1e6) + " ms"
	case d < time.Minute:
		s = sig(d.Seconds()) + " s"
	default:
		s = d.Round(time.Second).String()
	}
	if neg {
		return "−" + s
	}
	return s
}

// sig prints v with three significant digits.
func sig(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtRPS(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return thousands64(int64(v))
	case math.Abs(v) >= 100:
		return thousands64(int64(math.Round(v)))
	default:
		return sig(v)
	}
}

func thousands64(n int64) string {
	if n < 0 {
		return "-" + thousands64(-n)
	}
	return thousands(int(n))
}

// reachRow compares two Go benchmarks' ns/op.
type reachRow struct {
	name        string
	base, other float64
}

// reachRows are the comparisons of "Routes and judged bodies": those whose
// two benchmarks both ran.
func (r *report) reachRows() []reachRow {
	ns := func(pkg, name string) (float64, bool) {
		for _, g := range r.GoBench {
			if g.Pkg == pkg && g.Name == name {
				v, ok := g.Metrics["ns/op"]
				return v, ok
			}
		}
		return 0, false
	}
	var rows []reachRow
	for _, c := range []struct{ name, pkg, base, other string }{
		{"decision, 10 → 5,000 routes", "policy", "BenchmarkRoutes/10", "BenchmarkRoutes/5000"},
		{"proxied call, path → judged body (serial)", "proxy", "BenchmarkProxy/serial", "BenchmarkProxyJudgedBody/serial"},
		{"proxied call, path → judged body (parallel)", "proxy", "BenchmarkProxy/parallel", "BenchmarkProxyJudgedBody/parallel"},
	} {
		b, ok1 := ns(c.pkg, c.base)
		o, ok2 := ns(c.pkg, c.other)
		if ok1 && ok2 && b > 0 {
			rows = append(rows, reachRow{c.name, b, o})
		}
	}
	return rows
}

// kubeCSVPath is where the kubectl calls' times go: beside the report,
// its name with -kubectl.csv for .md.
func (r *report) kubeCSVPath() string {
	return strings.TrimSuffix(r.cfg.out, filepath.Ext(r.cfg.out)) + "-kubectl.csv"
}

// kubernetesMarkdown renders the kubectl measurement.
func (r *report) kubernetesMarkdown(b *bytes.Buffer, k *kubeResult) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## kubectl through elevate\n\n")
	p("`%s` (%d Pending pods) %d times each way, interleaved (every round runs each way once, the first rotating), ", k.Command, k.Pods, k.Calls)
	p("each call a new kubectl process timed from start to exit, after one warm-up call each way that fills kubectl's discovery cache. ")
	p("A kube-apiserver of the harness's own on loopback (token file, RBAC, its own one-member etcd; alice may get, list and watch pods in `%s`); ", kubeNamespace)
	p("elevate `serve --config` in front of it as a `type: kubernetes` upstream: TLS proxy listener, access control on, the default bundle, ")
	p("a durable audit record per call, the call sent on as alice with the `elevate-proxy` token (impersonation only). ")
	p("Direct and through elevate, the kubeconfig holds a static token, so the difference is the proxy's own cost.\n\n")
	p("| way | calls | p50 | p90 | min | max |\n|---|--:|--:|--:|--:|--:|\n")
	for _, v := range k.Variants {
		p("| %s | %d | %s | %s | %s | %s |\n", v.Label, len(v.Times), fmtDur(percentile(v.Times, 50)), fmtDur(percentile(v.Times, 90)),
			fmtDur(percentile(v.Times, 0)), fmtDur(percentile(v.Times, 100)))
	}
	p("\n")
	direct, through, withExec := k.variant(kubeDirect), k.variant(kubeElevate), k.variant(kubeExec)
	if direct != nil && through != nil && len(direct.Times) > 0 && len(through.Times) > 0 {
		d50, d90 := percentile(direct.Times, 50), percentile(direct.Times, 90)
		p("**elevate adds %s to `kubectl get pods`** (p50 through elevate − p50 direct; at p90: %s).",
			fmtDur(percentile(through.Times, 50)-d50), fmtDur(percentile(through.Times, 90)-d90))
		if withExec != nil && len(withExec.Times) > 0 {
			p(" With the exec plugin: %s over direct at p50, of which the plugin's run is %s.",
				fmtDur(percentile(withExec.Times, 50)-d50), fmtDur(percentile(withExec.Times, 50)-percentile(through.Times, 50)))
		}
		p("\n\n")
	}
	csvPath := r.kubeCSVPath()
	if rel, err := filepath.Rel(r.cfg.repo, csvPath); err == nil && !strings.HasPrefix(rel, "..") {
		csvPath = rel
	}
	p("Every call's time, in the order run: `%s`.\n\n", csvPath)
}
