package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// load is one wrk run's shape.
type load struct {
	threads, conns int
	duration       time.Duration
}

// wrkResult is what one wrk run reports.
type wrkResult struct {
	RPS                float64
	P50, P75, P90, P99 time.Duration
	Requests           int64
	Non2xx             int64
	SocketErrors       int64
}

// wrk drives a target with POSTs carrying a bearer token.
type wrk struct {
	bin    string
	script string // bench/post.lua
}

// run loads url with token and returns wrk's figures. Any non-2xx answer
// or socket error fails the run: every measured call must be allowed.
func (w wrk) run(ctx context.Context, url, token string, l load) (wrkResult, error) {
	secs := max(1, int(l.duration.Round(time.Second)/time.Second))
	args := []string{
		"-t", strconv.Itoa(l.threads), "-c", strconv.Itoa(l.conns), "-d", strconv.Itoa(secs) + "s",
		"--latency", "--timeout", "5s", "-s", w.script,
	}
	if token != "" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, w.bin, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	if r.Non2xx > 0 || r.SocketErrors > 0 {
		return r, fmt.Errorf("wrk %s: %d non-2xx answers and %d socket errors in %d requests:\n%s",
			url, r.Non2xx, r.SocketErrors, r.Requests, out)
	}
	return r, nil
}

var (
	wrkRPS       = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkPct       = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkRequests  = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	wrkNon2xx    = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocketErr = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads the output of `wrk --latency`.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no Requests/sec line")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	found := 0
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, err := wrkDuration(m[2], m[3])
		if err != nil {
			return r, err
		}
		switch m[1] {
		case "50":
			r.P50 = d
		case "75":
			r.P75 = d
		case "90":
			r.P90 = d
		case "99":
			r.P99 = d
		}
		found++
	}
	if found != 4 {
		return r, errors.New("no latency distribution (was --latency given?)")
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocketErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.SocketErrors += n
		}
	}
	return r, nil
}

func wrkDuration(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("latency %q: %w", num+unit, err)
	}
	scale := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9}[strings.ToLower(unit)]
	return time.Duration(f * scale), nil
}
