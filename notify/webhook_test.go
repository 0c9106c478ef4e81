package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWebhookBody(t *testing.T) {
	var raw atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raw.Store(map[string]any{"body": string(b), "type": r.Header.Get("Content-Type"), "method": r.Method})
	}))
	t.Cleanup(srv.Close)
	n, _ := start(t, Config{Webhooks: []Webhook{{URL: srv.URL}}})

	e := sample(KindSubmitted, "req-7")
	e.Target = `Exchange\Set-Mailbox <all> & more`
	n.Notify(e)
	waitStats(t, n, Stats{Queued: 1, Sent: 1})

	got := raw.Load().(map[string]any)
	require.Equal(t, http.MethodPost, got["method"])
	require.Equal(t, "application/json", got["type"])
	var body struct {
		Text  string         `json:"text"`
		Event map[string]any `json:"event"`
	}
	require.NoError(t, json.Unmarshal([]byte(got["body"].(string)), &body))
	require.Equal(t,
		`[elevate] submitted: Exchange\Set-Mailbox &lt;all&gt; &amp; more for bob (req-7), approvers: exchange-admins, reason: "INC-7 move the mailbox of the sales team"`,
		body.Text, "one Slack-compatible line, with &, < and > escaped")
	require.Equal(t, map[string]any{
		"id":              "req-7/" + KindSubmitted,
		"kind":            KindSubmitted,
		"request_id":      "req-7",
		"requester":       "bob",
		"requester_email": "bob@example.com",
		"scope":           "task",
		"target":          `Exchange\Set-Mailbox <all> & more`,
		"reason":          "INC-7 move the mailbox of the sales team",
		"approvers":       "exchange-admins",
		"status":          "pending",
		"at":              clock.Format(time.RFC3339),
		"decision_id":     "dec-req-7",
	}, body.Event)
}

func TestWebhookRetriesUntilDelivered(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	n, logs := start(t, Config{RetryBase: quickRetry, Retries: 5, Webhooks: []Webhook{{URL: rcv.srv.URL}}})
	n.Notify(sample(KindApproved, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Sent: 1, Retried: 2})

	bodies := rcv.received()
	require.Len(t, bodies, 3)
	for _, b := range bodies {
		require.Equal(t, bodies[0], b, "every attempt posts the same body")
		require.Equal(t, "req-1", b.Event.RequestID)
	}
	require.Equal(t, 2, strings.Count(logs.String(), "will retry"))
	require.Contains(t, logs.String(), "unexpected status 500")
	require.NotContains(t, logs.String(), "delivery failed")
}

func TestWebhookStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int // made by the notifier, with Retries 3
	}{
		{"bad request is final", http.StatusBadRequest, 1},
		{"unauthorized is final", http.StatusUnauthorized, 1},
		{"forbidden is final", http.StatusForbidden, 1},
		{"not found is final", http.StatusNotFound, 1},
		{"gone is final", http.StatusGone, 1},
		{"redirect is final and not followed", http.StatusFound, 1},
		{"request timeout is retried", http.StatusRequestTimeout, 3},
		{"too many requests is retried", http.StatusTooManyRequests, 3},
		{"server error is retried", http.StatusInternalServerError, 3},
		{"bad gateway is retried", http.StatusBadGateway, 3},
		{"unavailable is retried", http.StatusServiceUnavailable, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var elsewhere atomic.Int32
			other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
			t.Cleanup(other.Close)
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				w.Header().Set("Location", other.URL)
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)

			n, logs := start(t, Config{RetryBase: quickRetry, Retries: 3, Webhooks: []Webhook{{URL: srv.URL}}})
			n.Notify(sample(KindDenied, "req-1"))
			waitStats(t, n, Stats{Queued: 1, Failed: 1, Retried: uint64(tc.attempts - 1)})
			require.Equal(t, int32(tc.attempts), calls.Load())
			require.Zero(t, elsewhere.Load(), "redirects are not followed")
			require.Contains(t, logs.String(), "delivery failed")
		})
	}
}

func TestWebhookTimeoutIsRetriedAndNotifyDoesNotWait(t *testing.T) {
	arrived := make(chan struct{}, 16)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client leave
		arrived <- struct{}{}
		<-r.Context().Done() // hangs until the notifier gives up
	}))
	t.Cleanup(srv.Close)
	const timeout = time.Second
	n, logs := start(t, Config{RetryBase: quickRetry, Retries: 2, Webhooks: []Webhook{{URL: srv.URL, Timeout: timeout}}})

	n.Notify(sample(KindRevoked, "req-1"))
	<-arrived // the first attempt is now hanging

	began := time.Now()
	n.Notify(sample(KindExpired, "req-2"))
	require.Less(t, time.Since(began), timeout/2, "Notify does not wait for a delivery")

	waitStats(t, n, Stats{Queued: 2, Failed: 2, Retried: 2})
	require.Equal(t, int32(4), calls.Load())
	require.Contains(t, logs.String(), "Client.Timeout exceeded")
}

func TestWebhookEventsFilter(t *testing.T) {
	all := newReceiver(t, ok)
	decisions := newReceiver(t, ok)
	n, _ := start(t, Config{Webhooks: []Webhook{
		{URL: all.srv.URL},
		{URL: decisions.srv.URL, Events: []string{KindApproved, KindDenied}},
	}})
	for _, kind := range kinds {
		n.Notify(sample(kind, "req-1"))
	}
	waitStats(t, n, Stats{Queued: uint64(len(kinds) + 2), Sent: uint64(len(kinds) + 2)})

	kindsOf := func(r *receiver) []string {
		var ks []string
		for _, b := range r.received() {
			ks = append(ks, b.Event.Kind)
		}
		return ks
	}
	require.ElementsMatch(t, kinds, kindsOf(all))
	require.ElementsMatch(t, []string{KindApproved, KindDenied}, kindsOf(decisions))
}

func TestWebhookSecretsStayOutOfLogs(t *testing.T) {
	const token = "s3cr3t-header-value"
	rcv := newReceiver(t, func(int) int { return http.StatusBadGateway })
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("Bearer "+token+"\n"), 0o600))
	// Chat webhooks carry their secret in the path and the query.
	url := rcv.srv.URL + "/services/T0001/B0002/pathSecretXYZ?key=querySecretABC"

	n, logs := start(t, Config{RetryBase: quickRetry, Retries: 2, Webhooks: []Webhook{{
		URL: url, HeaderName: "authorization", HeaderValueFile: tokenFile,
	}}})
	n.Notify(sample(KindBreakGlass, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Failed: 1, Retried: 1})

	for _, h := range rcv.headers() {
		require.Equal(t, "Bearer "+token, h.Get("Authorization"))
	}
	out := logs.String()
	require.Contains(t, out, "webhook[0] "+strings.TrimPrefix(rcv.srv.URL, "http://"), "a webhook is named by index and host")
	for _, secret := range []string{token, "pathSecretXYZ", "querySecretABC", url} {
		require.NotContains(t, out, secret)
	}
}

func TestWebhookUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook/tokenInPath"
	srv.Close() // nothing listens there any more

	n, logs := start(t, Config{RetryBase: quickRetry, Retries: 3, Webhooks: []Webhook{{URL: url}}})
	began := time.Now()
	n.Notify(sample(KindSubmitted, "req-1"))
	require.Less(t, time.Since(began), time.Second)
	waitStats(t, n, Stats{Queued: 1, Failed: 1, Retried: 2})
	require.Contains(t, logs.String(), "connection refused")
	require.NotContains(t, logs.String(), "tokenInPath")
}
