package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// startupResult is the time from exec of `elevate serve --dev` to its first
// 200 on /readyz.
type startupResult struct {
	// Fresh: a new data directory (dev key, CA and etcd created).
	// Existing: the same directory again.
	Fresh, Existing []time.Duration
}

// startup runs `elevate serve --dev` cfg.startRuns times in a new data
// directory and as often again in the directory it left, each time until
// /readyz answers 200, then stops it.
func (h *harness) startup(ctx context.Context) error {
	res := &startupResult{}
	proxyAddr, controlAddr := h.devAddrs[0], h.devAddrs[1]
	for i := range h.cfg.startRuns {
		dir := filepath.Join(h.cfg.work, fmt.Sprintf("dev-%d", i))
		for _, into := range []*[]time.Duration{&res.Fresh, &res.Existing} {
			start := time.Now()
			p, err := h.ps.start(fmt.Sprintf("dev-%d", i), nil, h.cfg.elevateBin, "serve", "--dev",
				"--data-dir", dir, "--proxy-addr", proxyAddr, "--control-addr", controlAddr)
			if err != nil {
				return err
			}
			if err := waitReady(ctx, p, "http://"+controlAddr+"/readyz"); err != nil {
				h.ps.stop(p)
				return err
			}
			*into = append(*into, time.Since(start))
			h.ps.stop(p)
		}
	}
	h.rep.Startup = res
	return nil
}

// waitReady polls url every millisecond until it answers 200.
func waitReady(ctx context.Context, p *proc, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited (%v):\n%s", p.name, err, p.tail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, p.tail())
			return fmt.Errorf("%s: %s not ready in 60s", p.name, url)
		case <-time.After(time.Millisecond):
		}
	}
}
