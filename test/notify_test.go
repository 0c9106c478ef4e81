package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLifecycleNotifications: the running binary tells a webhook about
// submission, approval, revocation and break-glass, each with a
// Slack-compatible text, without slowing the decisions down.
func TestLifecycleNotifications(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	var texts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			mu.Lock()
			if e, ok := m["event"].(map[string]any); ok {
				kinds = append(kinds, fmt.Sprint(e["kind"]))
			}
			texts = append(texts, fmt.Sprint(m["text"]))
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("notify:\n  webhooks:\n    - url: "+hook.URL+"/elevate\n"), 0o600))
	s := startDev(t, "--config", cfg)
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob", "--email", "bob@example.test")
	olga := s.token("--sub", "olga", "--groups", "break-glass")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	id := s.request(bob, "--task", moveTask, "--reason", "move alice to the new database")
	s.ok(admin, "request", "approve", id, "--comment", "ok")
	s.ok(bob, "request", "revoke", id, "--comment", "done")
	s.request(olga, "--task", moveTask, "--reason", "outage", "--break-glass")

	want := []string{"request.submitted", "request.approved", "request.revoked", "request.break_glass"}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		got := map[string]bool{}
		for _, k := range kinds {
			got[k] = true
		}
		for _, k := range want {
			if !got[k] {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "webhook events: %v", kinds)
	mu.Lock()
	defer mu.Unlock()
	for _, text := range texts {
		require.NotEmpty(t, text)
	}
	require.Contains(t, fmt.Sprint(texts), id)
}
