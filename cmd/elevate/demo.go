package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// demoUpstream is the in-process API that `serve --dev` puts behind the
// proxy: a small model of Exchange Online's mailbox and journal-rule tasks.
// It keeps its state in memory and trusts whoever reaches it, as an admin
// API behind elevate would.
type demoUpstream struct {
	mu        sync.Mutex
	mailboxes map[string]*mailbox
	rules     map[string]journalRule
	moves     []moveRequest
	next      int
}

type mailbox struct {
	ID       string `json:"id"`
	Name     string `json:"display_name"`
	Database string `json:"database"`
}

type journalRule struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Recipient string `json:"journal_email_address"`
}

type moveRequest struct {
	ID       string    `json:"id"`
	Mailbox  string    `json:"mailbox"`
	Target   string    `json:"target_database"`
	Status   string    `json:"status"`
	Received time.Time `json:"received"`
}

func newDemoUpstream() *demoUpstream {
	d := &demoUpstream{mailboxes: map[string]*mailbox{}, rules: map[string]journalRule{}}
	for _, m := range []mailbox{
		{ID: "alice", Name: "Alice Example", Database: "DB01"},
		{ID: "bob", Name: "Bob Example", Database: "DB01"},
		{ID: "carol", Name: "Carol Example", Database: "DB02"},
	} {
		m := m
		d.mailboxes[m.ID] = &m
	}
	return d
}

func (d *demoUpstream) handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /mailboxes", d.listMailboxes)
	m.HandleFunc("GET /mailboxes/{id}", d.getMailbox)
	m.HandleFunc("POST /mailboxes/{id}/move-requests", d.newMoveRequest)
	m.HandleFunc("POST /mailboxes/{id}/search", d.searchMailbox)
	m.HandleFunc("POST /journal-rules", d.newJournalRule)
	m.HandleFunc("DELETE /journal-rules/{id}", d.removeJournalRule)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Tell tests which headers arrived (names only), so they can prove
		// that the caller's token never reaches the upstream.
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		w.Header().Set("X-Demo-Received-Headers", strings.Join(names, ","))
		w.Header().Set("X-Demo-Received-Path", r.URL.EscapedPath())
		w.Header().Set("X-Demo-Received-Host", r.Host)
		w.Header().Set("X-Demo-Received-Forwarded-For", r.Header.Get("X-Forwarded-For"))
		m.ServeHTTP(w, r)
	})
}

func demoJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *demoUpstream) listMailboxes(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]mailbox, 0, len(d.mailboxes))
	for _, m := range d.mailboxes {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	demoJSON(w, http.StatusOK, map[string]any{"mailboxes": out})
}

func (d *demoUpstream) getMailbox(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.mailboxes[r.PathValue("id")]
	if !ok {
		demoJSON(w, http.StatusNotFound, map[string]string{"error": "no such mailbox"})
		return
	}
	demoJSON(w, http.StatusOK, m)
}

func (d *demoUpstream) newMoveRequest(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TargetDatabase string `json:"target_database"`
	}
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in)
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.mailboxes[r.PathValue("id")]
	if !ok {
		demoJSON(w, http.StatusNotFound, map[string]string{"error": "no such mailbox"})
		return
	}
	if in.TargetDatabase == "" {
		in.TargetDatabase = "DB02"
	}
	d.next++
	mr := moveRequest{ID: fmt.Sprintf("move-%d", d.next), Mailbox: m.ID, Target: in.TargetDatabase, Status: "Queued", Received: time.Now().UTC()}
	d.moves = append(d.moves, mr)
	demoJSON(w, http.StatusCreated, mr)
}

func (d *demoUpstream) searchMailbox(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.mailboxes[r.PathValue("id")]; !ok {
		demoJSON(w, http.StatusNotFound, map[string]string{"error": "no such mailbox"})
		return
	}
	demoJSON(w, http.StatusOK, map[string]any{"mailbox": r.PathValue("id"), "results": []string{}})
}

func (d *demoUpstream) newJournalRule(w http.ResponseWriter, r *http.Request) {
	var in journalRule
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.Name == "" {
		demoJSON(w, http.StatusBadRequest, map[string]string{"error": "send {\"name\": ..., \"journal_email_address\": ...}"})
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	in.ID = fmt.Sprintf("rule-%d", d.next)
	d.rules[in.ID] = in
	demoJSON(w, http.StatusCreated, in)
}

func (d *demoUpstream) removeJournalRule(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := d.rules[id]; !ok {
		demoJSON(w, http.StatusNotFound, map[string]string{"error": "no such journal rule"})
		return
	}
	delete(d.rules, id)
	w.WriteHeader(http.StatusNoContent)
}

// demoUpstreamCmd serves the demo upstream on its own, for deployments that
// run elevate in front of it as in production (deploy/compose). It checks
// nothing: only elevate may reach it.
func demoUpstreamCmd() *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "demo-upstream",
		Short: "Serve the demo upstream (an Exchange-like admin API) on its own; it checks nothing, so put elevate in front of it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			srv := &http.Server{Handler: newDemoUpstream().handler(), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.ErrOrStderr(), "demo upstream listening on http://%s\n", ln.Addr())
			done := make(chan struct{})
			go func() {
				defer close(done)
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			err = srv.Serve(ln)
			stop()
			<-done
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:9000", "address to listen on")
	return c
}
