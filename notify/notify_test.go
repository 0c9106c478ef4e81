package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Timing used by the tests: eventually waits long on a busy machine, and
// quick retries keep the runs short.
const (
	eventually = 15 * time.Second
	tick       = 5 * time.Millisecond
	quickRetry = 5 * time.Millisecond
)

// clock is the instant the tests inject as Config.Now.
var clock = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

func fixedNow() time.Time { return clock }

// logBuffer collects slog output; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newNotifier builds a Notifier whose log lines, debug included, go to the
// returned buffer, and whose clock is fixedNow. It does not run it.
func newNotifier(t *testing.T, cfg Config) (*Notifier, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Now = fixedNow
	n, err := New(cfg)
	require.NoError(t, err)
	return n, logs
}

// run starts n.Run and returns the function that stops it and waits for
// it to return; the test's cleanup calls that function too.
func run(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// start is newNotifier then run.
func start(t *testing.T, cfg Config) (*Notifier, *logBuffer) {
	t.Helper()
	n, logs := newNotifier(t, cfg)
	run(t, n)
	return n, logs
}

// sample is an event about one request.
func sample(kind, id string) Event {
	return Event{
		Kind:           kind,
		RequestID:      id,
		Requester:      "bob",
		RequesterEmail: "bob@example.com",
		Scope:          "task",
		Target:         `Exchange\New-MoveRequest`,
		Reason:         "INC-7 move the mailbox of the sales team",
		Approvers:      "exchange-admins",
		Status:         "pending",
		DecisionID:     "dec-" + id,
	}
}

// hookBody is what a webhook receives.
type hookBody struct {
	Text  string `json:"text"`
	Event Event  `json:"event"`
}

// receiver is a webhook endpoint that records what it gets and answers
// with the status answer returns for the n-th request (from 1).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []hookBody
	heads  []http.Header
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		var body hookBody
		if err == nil {
			err = json.Unmarshal(b, &body)
		}
		r.mu.Lock()
		if err != nil {
			body.Text = "undecodable: " + err.Error()
		}
		r.bodies = append(r.bodies, body)
		r.heads = append(r.heads, req.Header.Clone())
		count := len(r.bodies)
		r.mu.Unlock()
		w.WriteHeader(answer(count))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func ok(int) int { return http.StatusNoContent }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func (r *receiver) received() []hookBody {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookBody(nil), r.bodies...)
}

func (r *receiver) headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.heads...)
}

// waitStats waits until n's counters equal want.
func waitStats(t *testing.T, n *Notifier, want Stats) {
	t.Helper()
	require.Eventually(t, func() bool { return n.Stats() == want }, eventually, tick, "want %+v", want)
	require.Equal(t, want, n.Stats())
}

func TestZeroConfigDoesNothing(t *testing.T) {
	n, logs := start(t, Config{})
	for _, kind := range kinds {
		n.Notify(sample(kind, "req-1"))
	}
	require.Equal(t, Stats{}, n.Stats())
	require.Empty(t, logs.String())
}

func TestNilNotifierDoesNothing(t *testing.T) {
	var n *Notifier
	n.Notify(sample(KindSubmitted, "req-1"))
	require.Equal(t, Stats{}, n.Stats())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Run(ctx) // returns once ctx has ended
}

func TestRunTwiceReturnsAtOnce(t *testing.T) {
	n, logs := newNotifier(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, 2)
	for range 2 {
		go func() {
			n.Run(ctx)
			done <- struct{}{}
		}()
	}
	// The second call returns while the first still runs.
	select {
	case <-done:
	case <-time.After(eventually):
		t.Fatal("no Run call returned")
	}
	require.Contains(t, logs.String(), "Run called more than once")
	cancel()
	<-done
}

func TestQueueFullDropsOldest(t *testing.T) {
	rcv := newReceiver(t, ok)
	n, logs := newNotifier(t, Config{QueueSize: 2, Webhooks: []Webhook{{URL: rcv.srv.URL}}})

	// Nothing runs yet: the queue fills, and Notify still returns at once.
	for _, id := range []string{"req-1", "req-2", "req-3"} {
		n.Notify(sample(KindSubmitted, id))
	}
	require.Equal(t, Stats{Queued: 3, Dropped: 1}, n.Stats())
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "delivery dropped")

	run(t, n)
	waitStats(t, n, Stats{Queued: 3, Sent: 2, Dropped: 1})
	var ids []string
	for _, b := range rcv.received() {
		ids = append(ids, b.Event.RequestID)
	}
	require.ElementsMatch(t, []string{"req-2", "req-3"}, ids, "the oldest was dropped")
}

func TestShutdownGivesWaitingRetriesALastAttempt(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	// The retry would come an hour later; stopping Run brings it forward.
	n, _ := newNotifier(t, Config{RetryBase: time.Hour, Webhooks: []Webhook{{URL: rcv.srv.URL}}})
	stop := run(t, n)
	n.Notify(sample(KindApproved, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Retried: 1})

	stop()
	require.Equal(t, Stats{Queued: 1, Sent: 1, Retried: 1}, n.Stats())
	require.Equal(t, 2, rcv.count())

	// Once Run has returned, Notify drops at once.
	n.Notify(sample(KindDenied, "req-2"))
	st := n.Stats()
	require.Equal(t, Stats{Queued: 2, Sent: 1, Dropped: 1, Retried: 1}, st)
	require.Equal(t, st.Queued, st.Sent+st.Failed+st.Dropped)
}

func TestConcurrentNotify(t *testing.T) {
	rcv := newReceiver(t, ok)
	n, _ := start(t, Config{Webhooks: []Webhook{{URL: rcv.srv.URL}}})
	const callers, each = 8, 25
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				n.Notify(sample(KindSubmitted, strings.Repeat("x", c+1)+string(rune('a'+i))))
			}
		})
	}
	wg.Wait()
	waitStats(t, n, Stats{Queued: callers * each, Sent: callers * each})
	require.Equal(t, callers*each, rcv.count())
}

func TestEventAtDefaultsToNow(t *testing.T) {
	rcv := newReceiver(t, ok)
	n, _ := start(t, Config{Webhooks: []Webhook{{URL: rcv.srv.URL}}})
	n.Notify(sample(KindSubmitted, "req-1"))
	at := clock.Add(-time.Hour)
	e := sample(KindApproved, "req-1")
	e.At = at
	n.Notify(e)
	waitStats(t, n, Stats{Queued: 2, Sent: 2})
	got := map[string]time.Time{}
	for _, b := range rcv.received() {
		got[b.Event.Kind] = b.Event.At
	}
	require.True(t, got[KindSubmitted].Equal(clock), "zero At is set from Config.Now")
	require.True(t, got[KindApproved].Equal(at), "a given At is kept")
}

func TestBackoffDoublesAndIsCapped(t *testing.T) {
	n := &Notifier{cfg: Config{RetryBase: time.Second}}
	for _, tc := range []struct {
		attempts int
		base     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{20, maxBackoff},
		{1000, maxBackoff},
	} {
		d := n.backoff(tc.attempts)
		require.GreaterOrEqual(t, d, tc.base, "attempts %d", tc.attempts)
		require.LessOrEqual(t, d, tc.base+tc.base/4, "attempts %d", tc.attempts)
	}
}

func TestEventIDDefaultsToRequestAndKind(t *testing.T) {
	rcv := newReceiver(t, ok)
	n, _ := start(t, Config{Webhooks: []Webhook{{URL: rcv.srv.URL}}})
	n.Notify(sample(KindSubmitted, "req-1"))
	e := sample(KindApproved, "req-1")
	e.ID = "evt-given"
	n.Notify(e)
	waitStats(t, n, Stats{Queued: 2, Sent: 2})
	got := map[string]string{}
	for _, b := range rcv.received() {
		got[b.Event.Kind] = b.Event.ID
	}
	require.Equal(t, map[string]string{KindSubmitted: "req-1/" + KindSubmitted, KindApproved: "evt-given"}, got)
}

func TestDeliverWaits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(n int) int
		want   Stats
	}{
		{"delivered", ok, Stats{Queued: 1, Sent: 1}},
		{"delivered after a retry", func(n int) int {
			if n == 1 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, Stats{Queued: 1, Sent: 1, Retried: 1}},
		// Given up for good is final, as with Notify: another Deliver
		// would fail the same way.
		{"refused for good", func(int) int { return http.StatusGone }, Stats{Queued: 1, Failed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, tc.answer)
			n, _ := start(t, Config{RetryBase: quickRetry, Webhooks: []Webhook{{URL: rcv.srv.URL}}})
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			require.NoError(t, n.Deliver(ctx, sample(KindExpired, "req-1")))
			require.Equal(t, tc.want, n.Stats(), "over when Deliver returns")
		})
	}
}

func TestDeliverReportsWhatWasNotMade(t *testing.T) {
	t.Run("context ends first", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		n, _ := start(t, Config{Webhooks: []Webhook{{URL: srv.URL}}})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, n.Deliver(ctx, sample(KindExpired, "req-1")), context.DeadlineExceeded)
	})
	t.Run("notifier stopped", func(t *testing.T) {
		rcv := newReceiver(t, ok)
		n, _ := newNotifier(t, Config{Webhooks: []Webhook{{URL: rcv.srv.URL}}})
		run(t, n)()
		require.Error(t, n.Deliver(context.Background(), sample(KindExpired, "req-1")))
		require.Zero(t, rcv.count())
	})
	t.Run("dropped from a full queue", func(t *testing.T) {
		rcv := newReceiver(t, ok)
		n, _ := newNotifier(t, Config{QueueSize: 1, Webhooks: []Webhook{{URL: rcv.srv.URL}}})
		errc := make(chan error, 1)
		go func() { errc <- n.Deliver(context.Background(), sample(KindExpired, "req-1")) }()
		require.Eventually(t, func() bool { return n.Stats().Queued == 1 }, eventually, tick)
		n.Notify(sample(KindSubmitted, "req-2")) // pushes req-1 out: Run is not running yet
		require.Error(t, <-errc)
	})
	t.Run("nobody receives it", func(t *testing.T) {
		n, _ := start(t, Config{})
		require.NoError(t, n.Deliver(context.Background(), sample(KindExpired, "req-1")))
		var none *Notifier
		require.NoError(t, none.Deliver(context.Background(), sample(KindExpired, "req-1")))
	})
}
