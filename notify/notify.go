package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// workers is the number of deliveries made at the same time.
	workers = 4
	// maxBackoff caps the wait between two attempts.
	maxBackoff = 5 * time.Minute
	// drainTimeout bounds the work Run still does once its context ends.
	drainTimeout = 2 * time.Second
)

// Stats counts deliveries: one event sent to one mail address, or to one
// webhook, is one delivery. Once Run has returned,
// Queued == Sent + Failed + Dropped.
type Stats struct {
	Queued  uint64 // deliveries Notify produced
	Sent    uint64 // delivered: accepted by the relay, or answered 2xx
	Failed  uint64 // given up after their last attempt, or on an error no retry can fix
	Dropped uint64 // pushed out of a full queue, or left over when Run ended
	Retried uint64 // attempts scheduled after a failed one
}

// target is where one delivery goes. String names it for logs and holds
// no secret.
type target interface {
	deliver(ctx context.Context, e Event) error
	String() string
}

// permanentError marks a failure that another attempt would repeat.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func permanent(err error) error { return permanentError{err} }

// job is one delivery waiting in the queue.
type job struct {
	e        Event
	t        target
	attempts int       // attempts made so far
	due      time.Time // not before (runtime clock)
	b        *batch    // the Deliver call waiting for it; nil for Notify
}

// batch follows the deliveries of one Deliver call until each is over.
type batch struct {
	mu   sync.Mutex
	left int
	lost bool // a delivery was dropped or cut short rather than made or given up
	done chan struct{}
}

// end records that one delivery of the batch is over; lost says it was
// dropped or cut short. A nil batch (a delivery of Notify) ignores it.
func (b *batch) end(lost bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lost = b.lost || lost
	if b.left--; b.left == 0 {
		close(b.done)
	}
}

// errNotDelivered is returned by Deliver when a delivery was dropped.
var errNotDelivered = errors.New("notify: a delivery was dropped before it could be made")

// Notifier tells people and systems about access requests: by mail and by
// webhook. Notify queues; Run delivers. Make one with New; a nil *Notifier
// does nothing.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	mailer  *mailer // nil when mail is off
	hooks   []*hook
	secrets []string // never to appear in a log line
	running atomic.Bool

	mu     sync.Mutex
	jobs   []*job // waiting deliveries, oldest first
	closed bool   // Run has ended or is draining: Notify drops
	wake   chan struct{}

	queued, sent, failed, dropped, retried atomic.Uint64
}

// New validates cfg (see Config.Validate), reads the secret and CA files
// it names and returns a Notifier. Nothing is delivered until Run.
func New(cfg Config) (*Notifier, error) {
	cfg.Groups = maps.Clone(cfg.Groups)
	cfg.Webhooks = slices.Clone(cfg.Webhooks)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if cfg.SMTP.Addr != "" {
		m, err := newMailer(cfg.SMTP, cfg.Now)
		if err != nil {
			return nil, err
		}
		n.mailer = m
		n.secrets = append(n.secrets, m.password)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	for i, w := range cfg.Webhooks {
		h, err := newHook(i, w, transport)
		if err != nil {
			return nil, err
		}
		n.hooks = append(n.hooks, h)
		n.secrets = append(n.secrets, h.value, h.url)
		if u, err := url.Parse(h.url); err == nil && len(u.RequestURI()) > 1 {
			n.secrets = append(n.secrets, u.RequestURI())
		}
	}
	n.secrets = slices.DeleteFunc(n.secrets, func(s string) bool { return s == "" })
	return n, nil
}

// Notify queues the deliveries of e and returns at once: it never blocks on
// a delivery, never fails and never panics. An e.At left zero is set to
// Config.Now(). Who receives what:
//
//   - request.submitted: the address of the approver group (e.Approvers);
//   - request.approved, request.denied: the requester (e.RequesterEmail);
//   - request.revoked, request.expired, request.used_up: the requester and
//     the approver group;
//   - request.break_glass: every address in Config.Groups, with the mail
//     marked urgent;
//   - every webhook whose Events list the kind, or is empty.
//
// Each address gets its own message, and each delivery is retried on its
// own. When the queue is full, the oldest waiting delivery is dropped.
// After Run has ended, deliveries are dropped at once.
func (n *Notifier) Notify(e Event) {
	if n == nil || n.wake == nil {
		return
	}
	_, _ = n.enqueue(e, false)
}

// Deliver makes the deliveries of e, to the receivers Notify would choose,
// and waits until each is over: made, or given up after Config.Retries
// attempts or on an error no retry can fix (logged and counted as with
// Notify). It returns an error when ctx ends first, or when a delivery was
// dropped (a full queue, a Notifier that stopped) or cut short by the end
// of Run; the caller may then call it again later, and receivers get the
// deliveries already made once more, with the same Event.ID. A nil
// *Notifier, and an event nobody receives, return nil at once.
//
// Deliver suits a caller that keeps the event durably until it returns
// nil, such as an outbox that outlives this process; Notify suits a caller
// that must not wait.
func (n *Notifier) Deliver(ctx context.Context, e Event) error {
	if n == nil || n.wake == nil {
		return nil
	}
	b, err := n.enqueue(e, true)
	if err != nil || b == nil {
		return err
	}
	select {
	case <-b.done:
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.lost {
			return errNotDelivered
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notify: waiting for the deliveries of %s: %w", oneLine(e.ID), context.Cause(ctx))
	}
}

// enqueue queues the deliveries of e. With track it returns the batch
// that follows them, nil when e has none. It never panics.
func (n *Notifier) enqueue(e Event, track bool) (b *batch, err error) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("notify: event lost", "event", oneLine(e.Kind), "request", oneLine(e.RequestID), "panic", fmt.Sprint(r))
			b, err = nil, errNotDelivered
		}
	}()
	if e.At.IsZero() {
		e.At = n.cfg.Now()
	}
	e = withID(e)
	targets := n.targets(e)
	if len(targets) == 0 {
		return nil, nil
	}
	if track {
		b = &batch{left: len(targets), done: make(chan struct{})}
	}
	now := time.Now()
	var dropped []uint64
	n.mu.Lock()
	for _, t := range targets {
		n.queued.Add(1)
		if n.closed {
			dropped = append(dropped, n.dropped.Add(1))
			b.end(true)
			continue
		}
		if d, ok := n.pushLocked(&job{e: e, t: t, due: now, b: b}); ok {
			dropped = append(dropped, d)
		}
	}
	n.mu.Unlock()
	n.signal()
	for _, d := range dropped {
		n.logDrop(d)
	}
	return b, nil
}

// logDrop logs the drop that brought Stats.Dropped to total. Under a flood
// only the 1st, 2nd, 4th, 8th... drop is logged.
func (n *Notifier) logDrop(total uint64) {
	if total&(total-1) == 0 {
		n.log.Error("notify: delivery dropped: queue full or notifier stopped", "dropped_total", total)
	}
}

// pushLocked appends j, first dropping the oldest job when the queue is
// full; it then reports the new Dropped total. n.mu is held.
func (n *Notifier) pushLocked(j *job) (uint64, bool) {
	var d uint64
	full := len(n.jobs) >= n.cfg.QueueSize
	if full {
		n.jobs[0].b.end(true)
		n.jobs[0] = nil
		n.jobs = n.jobs[1:]
		d = n.dropped.Add(1)
	}
	n.jobs = append(n.jobs, j)
	return d, full
}

// signal wakes one idle worker.
func (n *Notifier) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// targets lists the deliveries of e.
func (n *Notifier) targets(e Event) []target {
	var ts []target
	if n.mailer != nil {
		for _, to := range n.recipients(e) {
			ts = append(ts, mailTarget{m: n.mailer, to: to})
		}
	}
	for _, h := range n.hooks {
		if h.wants(e.Kind) {
			ts = append(ts, h)
		}
	}
	return ts
}

// recipients lists the mail addresses e goes to, each once.
func (n *Notifier) recipients(e Event) []string {
	var to []string
	add := func(addrs ...string) {
		for _, a := range addrs {
			if a != "" && !slices.ContainsFunc(to, func(b string) bool { return strings.EqualFold(a, b) }) {
				to = append(to, a)
			}
		}
	}
	group := func() {
		if a, ok := n.cfg.Groups[e.Approvers]; ok {
			add(a)
			return
		}
		n.log.Warn("notify: no mail address for the approver group", "event", oneLine(e.Kind), "request", oneLine(e.RequestID), "group", oneLine(e.Approvers))
	}
	requester := strings.TrimSpace(e.RequesterEmail)
	switch e.Kind {
	case KindSubmitted:
		group()
	case KindApproved, KindDenied:
		add(requester)
	case KindRevoked, KindExpired, KindUsedUp:
		add(requester)
		group()
	case KindBreakGlass:
		// Nobody approved this: every approver group hears of it.
		names := slices.Collect(maps.Keys(n.cfg.Groups))
		sort.Strings(names)
		for _, g := range names {
			add(n.cfg.Groups[g])
		}
		if len(to) == 0 {
			n.log.Warn("notify: no approver group address for a break-glass mail", "request", oneLine(e.RequestID))
		}
	}
	return to
}

// Stats returns the delivery counters.
func (n *Notifier) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	return Stats{
		Queued:  n.queued.Load(),
		Sent:    n.sent.Load(),
		Failed:  n.failed.Load(),
		Dropped: n.dropped.Load(),
		Retried: n.retried.Load(),
	}
}

// Run makes the deliveries Notify queues, a few at a time, until ctx ends.
// Then it stops accepting new ones and, for at most two seconds, gives each
// delivery still queued (even one waiting for a retry) one last attempt;
// what is left is dropped. Run returns when that is done. A Notifier runs
// once: a second call returns at once.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil || n.wake == nil {
		<-ctx.Done()
		return
	}
	if !n.running.CompareAndSwap(false, true) {
		n.log.Error("notify: Run called more than once")
		return
	}
	// hard ends the deliveries in flight once draining has taken too long.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelHard()
		case <-hard.Done():
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { n.work(ctx, hard) })
	}
	wg.Wait()

	n.mu.Lock()
	n.closed = true
	left := len(n.jobs)
	for _, j := range n.jobs {
		j.b.end(true)
	}
	n.jobs = nil
	n.mu.Unlock()
	if left > 0 {
		n.log.Warn("notify: deliveries left undone at shutdown", "dropped", left)
		n.dropped.Add(uint64(left))
	}
}

// work is one delivery worker.
func (n *Notifier) work(ctx, hard context.Context) {
	for hard.Err() == nil {
		draining := ctx.Err() != nil
		j, wait := n.take(time.Now(), draining)
		if j != nil {
			n.attempt(ctx, hard, j)
			continue
		}
		if draining {
			return
		}
		var timer *time.Timer
		var due <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// take removes and returns the oldest job that is due at now (any job when
// all is set). Without one, it returns how long until the next job is due,
// or 0 when the queue is empty.
func (n *Notifier) take(now time.Time, all bool) (*job, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var next time.Duration
	for i, j := range n.jobs {
		if wait := j.due.Sub(now); all || wait <= 0 {
			n.jobs = slices.Delete(n.jobs, i, i+1)
			if len(n.jobs) > 0 {
				n.signal() // another worker may take the rest
			}
			return j, 0
		} else if next == 0 || wait < next {
			next = wait
		}
	}
	return nil, next
}

// attempt makes one attempt at j, then counts it as sent or failed, or
// queues it again for a later attempt.
func (n *Notifier) attempt(ctx, hard context.Context, j *job) {
	j.attempts++
	err := safeDeliver(hard, j)
	if err == nil {
		// Logged before counted: whoever sees the count sees the line.
		n.log.Debug("notify: delivered", "event", oneLine(j.e.Kind), "request", oneLine(j.e.RequestID), "target", j.t.String(), "attempts", j.attempts)
		n.sent.Add(1)
		j.b.end(false)
		return
	}
	attrs := []any{"event", oneLine(j.e.Kind), "request", oneLine(j.e.RequestID), "target", j.t.String(), "attempts", j.attempts, "error", n.redact(err)}
	final := errors.As(err, new(permanentError)) || j.attempts >= n.cfg.Retries
	if final || ctx.Err() != nil {
		n.log.Error("notify: delivery failed", attrs...)
		n.failed.Add(1)
		// Given up for good, or cut short by shutdown: only the latter
		// is worth another Deliver.
		j.b.end(!final)
		return
	}
	wait := n.backoff(j.attempts)
	j.due = time.Now().Add(wait)
	n.log.Warn("notify: delivery attempt failed, will retry", append(attrs, "retry_in", wait)...)
	n.retried.Add(1)
	n.mu.Lock()
	d, dropped := n.pushLocked(j)
	n.mu.Unlock()
	n.signal()
	if dropped {
		n.logDrop(d)
	}
}

// safeDeliver turns a panic of a delivery into a permanent failure.
func safeDeliver(ctx context.Context, j *job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = permanent(fmt.Errorf("panic: %v", r))
		}
	}()
	return j.t.deliver(ctx, j.e)
}

// backoff is the wait after the given number of failed attempts: RetryBase
// doubled for each attempt after the first, capped, plus up to a quarter
// of random jitter.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.cfg.RetryBase
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d + rand.N(d/4+1)
}

// redact renders err for a log line without any configured secret.
func (n *Notifier) redact(err error) string {
	s := err.Error()
	for _, secret := range n.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}
