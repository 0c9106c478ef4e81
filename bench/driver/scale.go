package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/elevate-pam/elevate/grants"
)

// scaleResult is instance A measured in one state.
type scaleResult struct {
	Label          string
	Grants         int // live grants in A's view
	Policies       int
	Concurrent     wrkResult
	Single         wrkResult
	CPUPerCall     time.Duration // elevate's CPU time per call under concurrent load
	HeapLive, RSS  float64       // bytes
	HeapInUse      float64
	PreparedIn     time.Duration // time to create the state's policies or grants
	PreparedPerSec float64
}

// scale measures instance A with 10 grants and 10 policies, then with
// cfg.fillPolicies policies, then (those removed) with cfg.fillGrants more
// grants. Policies and grants are written with the grants package straight
// to etcd, as elevate's side API would write them, to stay within the time
// budget.
func (h *harness) scale(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{h.etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	store, err := grants.New(grants.Config{Client: cli, Prefix: grants.DefaultPrefix, MaxDuration: 24 * time.Hour})
	if err != nil {
		return err
	}
	api := newAPIClient(h.a.apiURL)

	base, err := h.measureA(ctx, fmt.Sprintf("%d grants, %d policies", h.baseGrants, h.basePolicies))
	if err != nil {
		return err
	}
	h.rep.Scale = append(h.rep.Scale, base)

	// Policies.
	start := time.Now()
	var ids []string
	for i := h.basePolicies; i < h.cfg.fillPolicies; i++ {
		p, err := store.CreatePolicy(ctx, grants.Policy{Scope: grants.ScopeTask, Target: fmt.Sprintf(fillTaskFormat, i),
			Approval: grants.ApprovalAuto, CreatedBy: "bench"})
		if err != nil {
			return fmt.Errorf("create policy %d: %w", i, err)
		}
		ids = append(ids, p.ID)
	}
	took := time.Since(start)
	if err := waitPolicies(ctx, api, h.admin, h.cfg.fillPolicies); err != nil {
		return err
	}
	many, err := h.measureA(ctx, fmt.Sprintf("%d grants, %s policies", h.baseGrants, thousands(h.cfg.fillPolicies)))
	if err != nil {
		return err
	}
	many.PreparedIn, many.PreparedPerSec = took, float64(len(ids))/took.Seconds()
	h.rep.Scale = append(h.rep.Scale, many)
	for _, id := range ids {
		if _, err := store.DeletePolicy(ctx, id); err != nil {
			return fmt.Errorf("delete policy %s: %w", id, err)
		}
	}
	if err := waitPolicies(ctx, api, h.admin, h.basePolicies); err != nil {
		return err
	}

	// Grants.
	start = time.Now()
	if err := fillGrants(ctx, store, h.fillPolicyID, h.cfg.fillGrants); err != nil {
		return err
	}
	took = time.Since(start)
	want := h.baseGrants + h.cfg.fillGrants
	if err := h.waitLiveGrants(ctx, want); err != nil {
		return err
	}
	full, err := h.measureA(ctx, fmt.Sprintf("%s grants, %d policies", thousands(want), h.basePolicies))
	if err != nil {
		return err
	}
	full.PreparedIn, full.PreparedPerSec = took, float64(h.cfg.fillGrants)/took.Seconds()
	h.rep.Scale = append(h.rep.Scale, full)
	return nil
}

// measureA loads instance A (a warm-up, 32 connections, one connection)
// and reads its memory from /metrics.
func (h *harness) measureA(ctx context.Context, label string) (scaleResult, error) {
	fmt.Fprintf(os.Stderr, "bench:   %s\n", label)
	url := h.a.proxyURL + "/bench/call"
	r := scaleResult{Label: label}
	if _, err := h.wrk.run(ctx, url, h.alice, load{threads: 2, conns: 32, duration: h.cfg.warm}); err != nil {
		return r, err
	}
	var err error
	cpu0 := groupsCPU([]*proc{h.a.proc})
	if r.Concurrent, err = h.wrk.run(ctx, url, h.alice, load{threads: 2, conns: 32, duration: h.cfg.scaleDur}); err != nil {
		return r, err
	}
	if r.Concurrent.Requests > 0 {
		r.CPUPerCall = (groupsCPU([]*proc{h.a.proc}) - cpu0) / time.Duration(r.Concurrent.Requests)
	}
	if r.Single, err = h.wrk.run(ctx, url, h.alice, load{threads: 1, conns: 1, duration: h.cfg.scaleDur}); err != nil {
		return r, err
	}
	m, err := scrape(ctx, h.a.apiURL+"/metrics")
	if err != nil {
		return r, err
	}
	// The heap goal is set at the end of each collection to the live heap
	// times (1 + GOGC/100), GOGC being 100: half of it is the live heap at
	// the last collection, a figure that garbage does not blur.
	r.HeapLive = m["go_memstats_next_gc_bytes"] / 2
	r.HeapInUse = m["go_memstats_heap_inuse_bytes"]
	r.RSS = m["process_resident_memory_bytes"]
	r.Grants = int(m["elevate_grants_live"])
	ps, err := newAPIClient(h.a.apiURL).policies(ctx, h.admin)
	if err != nil {
		return r, err
	}
	r.Policies = len(ps)
	return r, nil
}

// fillGrants writes n grants for distinct users through an auto-approval
// policy, from 128 writers at once.
func fillGrants(ctx context.Context, store *grants.Store, policyID string, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 128)
	target := fmt.Sprintf(fillTaskFormat, 1)
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				_, err := store.Submit(ctx, grants.NewRequest{
					Requester: grants.Actor{Subject: fmt.Sprintf("user-%06d", i)},
					Scope:     grants.ScopeTask, Target: target, Reason: "benchmark fill",
					Duration: 4 * time.Hour, PolicyID: policyID,
				})
				if err != nil {
					errc <- fmt.Errorf("grant %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func waitPolicies(ctx context.Context, api *apiClient, admin string, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ps, err := api.policies(ctx, admin)
		if err == nil && len(ps) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("elevate sees %d policies, not %d, after 60s (%v)", len(ps), want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) waitLiveGrants(ctx context.Context, want int) error {
	deadline := time.Now().Add(120 * time.Second)
	for {
		m, err := scrape(ctx, h.a.apiURL+"/metrics")
		if err == nil && int(m["elevate_grants_live"]) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("elevate sees %v live grants, not %d, after 120s (%v)", m["elevate_grants_live"], want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape reads the Prometheus text at url: each metric's value, summed over
// its label sets.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET " + url + ": " + resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	m := map[string]float64{}
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		m[name] += v
	}
	return m, sc.Err()
}

// thousands writes n with a comma between thousands.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
