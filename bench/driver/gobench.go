package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// goBenchPackages hold the Go benchmarks of the hot path: identity, Rego,
// grant lookup, audit append, tracing, and the whole Gate.Check.
var goBenchPackages = []string{"./proxy/identity/", "./policy/", "./grants/", "./audit/", "./telemetry/", "./proxy/"}

// goBench is one benchmark's line.
type goBench struct {
	Pkg, Name string
	N         int64
	// Metrics by unit: ns/op, B/op, allocs/op and custom ones (records/s).
	Metrics map[string]float64
	Units   []string // in the order printed
}

// goBenchmarks runs `go test -bench` with -benchmem on goBenchPackages.
// A failure is reported, and returned after the report is written.
func (h *harness) goBenchmarks(ctx context.Context) error {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", h.cfg.benchtime, "-count", "1", "-timeout", "10m"}, goBenchPackages...)
	cmd := exec.CommandContext(ctx, h.cfg.goB, args...)
	cmd.Dir = h.cfg.repo
	out, err := cmd.CombinedOutput()
	h.rep.GoBenchCmd = "go " + strings.Join(args, " ")
	h.rep.GoBench = parseGoBench(string(out))
	if err != nil {
		h.rep.GoBenchErr = fmt.Sprintf("%v\n%s", err, tailLines(string(out), 40))
		fmt.Fprintln(os.Stderr, string(out))
		return fmt.Errorf("go benchmarks: %w", err)
	}
	return nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parseGoBench reads `go test -bench` output.
func parseGoBench(out string) []goBench {
	var res []goBench
	pkg := ""
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(p), "github.com/elevate-pam/elevate/")
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		b := goBench{Pkg: pkg, Name: m[1], Metrics: map[string]float64{}}
		b.N, _ = strconv.ParseInt(m[2], 10, 64)
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			b.Metrics[f[i+1]] = v
			b.Units = append(b.Units, f[i+1])
		}
		res = append(res, b)
	}
	return res
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
