package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// propagationResult holds the trials' times.
type propagationResult struct {
	Trials int
	// Approve is from sending the approval to instance A until the first
	// allowed call through instance B; Revoke from sending the revocation
	// to A until the first refused call through B.
	Approve, Revoke []time.Duration
	// ApproveCall and RevokeCall are the side-API calls' own durations.
	ApproveCall, RevokeCall []time.Duration
	// ApproveAfter and RevokeAfter are from A's answer to B's first
	// changed answer: the watch's share (negative when B was first).
	ApproveAfter, RevokeAfter []time.Duration
	// Timeouts counts changes B had not seen after propagationTimeout.
	Timeouts int
}

// propagationTimeout bounds one trial's wait for instance B.
const propagationTimeout = 5 * time.Second

// propagationPollers is how many callers poll instance B at once, so that
// the change is seen within a fraction of one call's latency.
const propagationPollers = 3

// propagation starts a second elevate on the same etcd and measures, over
// cfg.trials requests, how long an approval and a revocation made through
// instance A take to reach instance B's proxy. Requesters and approvers
// rotate among 20 users each, which keeps every caller under the side
// API's per-caller rate limit.
func (h *harness) propagation(ctx context.Context) error {
	if err := h.startElevate(ctx, h.b); err != nil {
		return err
	}
	defer h.ps.stop(h.b.proc)
	api := newAPIClient(h.a.apiURL)
	res := &propagationResult{Trials: h.cfg.trials}
	url := h.b.proxyURL + "/bench/call"
	for i := range h.cfg.trials {
		requester, err := h.token(fmt.Sprintf("bob-%02d", i%20))
		if err != nil {
			return err
		}
		approver, err := h.token(fmt.Sprintf("appr-%02d", i%20), approverGroup)
		if err != nil {
			return err
		}
		req, err := api.submit(ctx, requester, hotTask)
		if err != nil {
			return err
		}
		for _, step := range []struct {
			action string
			want   int
			took   *[]time.Duration
			call   *[]time.Duration
			after  *[]time.Duration
		}{
			{"approve", http.StatusOK, &res.Approve, &res.ApproveCall, &res.ApproveAfter},
			{"revoke", http.StatusForbidden, &res.Revoke, &res.RevokeCall, &res.RevokeAfter},
		} {
			seen := pollUntil(ctx, url, requester, step.want)
			start := time.Now()
			if _, err := api.decide(ctx, approver, req.ID, step.action); err != nil {
				return err
			}
			answered := time.Now()
			*step.call = append(*step.call, answered.Sub(start))
			at, ok := <-seen
			if !ok {
				res.Timeouts++
				*step.took = append(*step.took, propagationTimeout)
				continue
			}
			*step.took = append(*step.took, at.Sub(start))
			*step.after = append(*step.after, at.Sub(answered))
		}
	}
	h.rep.Propagation = res
	return nil
}

// pollUntil calls url with token from several goroutines until one gets
// status want, and sends the time it arrived; the channel closes without a
// value after propagationTimeout. Each poller keeps its own connection.
func pollUntil(ctx context.Context, url, token string, want int) <-chan time.Time {
	ctx, cancel := context.WithTimeout(ctx, propagationTimeout)
	found := make(chan time.Time, propagationPollers)
	done := make(chan struct{})
	out := make(chan time.Time, 1)
	for range propagationPollers {
		go func() {
			defer func() { done <- struct{}{} }()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: propagationTimeout}
			defer hc.CloseIdleConnections()
			for ctx.Err() == nil {
				status, err := post(ctx, hc, url, token)
				if err == nil && status == want {
					found <- time.Now()
					cancel()
					return
				}
			}
		}()
	}
	go func() {
		for range propagationPollers {
			<-done
		}
		cancel()
		close(found)
		var first time.Time
		for t := range found {
			if first.IsZero() || t.Before(first) {
				first = t
			}
		}
		if !first.IsZero() {
			out <- first
		}
		close(out)
	}()
	return out
}

// percentile is the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}
