package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Target names, in the report's order.
const (
	targetDirect   = "direct (upstream)"
	targetHTTPUtil = "httputil.ReverseProxy"
	targetElevate  = "elevate (all checks)"
	targetNginxOPA = "nginx + njs + OPA"
)

// targetResult is one target's figures.
type targetResult struct {
	Name       string
	Concurrent wrkResult
	Single     wrkResult
	// CPUPerCall is the CPU time the target's own processes spent per call
	// under concurrent load: the proxy's (nginx's and OPA's together), not
	// the upstream's nor wrk's; for direct, the upstream's.
	CPUPerCall time.Duration
}

// throughput loads each target with wrk: a warm-up, then 2 threads and 32
// connections, then one connection.
func (h *harness) throughput(ctx context.Context) error {
	targets := []struct {
		name  string
		url   string
		procs []*proc
	}{
		{targetDirect, h.upstreamURL + "/call", []*proc{h.upstream}},
		{targetHTTPUtil, h.revproxyURL + "/call", []*proc{h.revproxy}},
		{targetElevate, h.a.proxyURL + "/bench/call", []*proc{h.a.proc}},
		{targetNginxOPA, h.nginxURL + "/call", []*proc{h.nginx, h.opa}},
	}
	concurrent := load{threads: 2, conns: 32, duration: h.cfg.loadDur}
	single := load{threads: 1, conns: 1, duration: h.cfg.singleDur}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "bench:   %s\n", t.name)
		if _, err := h.wrk.run(ctx, t.url, h.alice, load{threads: 2, conns: 32, duration: h.cfg.warm}); err != nil {
			return err
		}
		before, err := h.sinkCounts(ctx)
		if err != nil {
			return err
		}
		cpu0 := groupsCPU(t.procs)
		c, err := h.wrk.run(ctx, t.url, h.alice, concurrent)
		if err != nil {
			return err
		}
		cpu1 := groupsCPU(t.procs)
		after, err := h.sinkCounts(ctx)
		if err != nil {
			return err
		}
		s, err := h.wrk.run(ctx, t.url, h.alice, single)
		if err != nil {
			return err
		}
		r := targetResult{Name: t.name, Concurrent: c, Single: s}
		if c.Requests > 0 {
			r.CPUPerCall = (cpu1 - cpu0) / time.Duration(c.Requests)
		}
		h.rep.Targets = append(h.rep.Targets, r)
		if t.name == targetElevate {
			h.rep.SpanExport = sinkStats{
				TraceRequests: after.TraceRequests - before.TraceRequests, TraceBytes: after.TraceBytes - before.TraceBytes,
			}
			h.rep.ElevateCalls = c.Requests
		}
	}
	return nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// groupsCPU is the CPU time (user and system) used so far by every live
// process in the process groups of ps.
func groupsCPU(ps []*proc) time.Duration {
	groups := map[int]bool{}
	for _, p := range ps {
		if p != nil {
			groups[p.cmd.Process.Pid] = true
		}
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		if !groups[pgrp] {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * clockTick
	}
	return total
}
