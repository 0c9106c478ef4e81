package proxy

// A stream allowed by a grant (a Kubernetes watch, a followed log, an
// exec, attach or port-forward session) lasts no longer than the grant.

import (
	"context"
	"io"
	"sync"
	"time"
)

// holdInterval is how often a held stream looks at the in-memory view
// for its grant: a revocation cuts it within about this long.
const holdInterval = 200 * time.Millisecond

// grantHold watches the grant of one stream and cuts the stream when the
// grant is no longer live: ended, revoked, used up, or no longer
// confirmed because the view of etcd is stale.
type grantHold struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	why    string      // why the stream was cut; "" while it runs
	closeT []io.Closer // closed when cut: an upgraded connection's two ends
}

// holdGrant starts holding the stream of a call allowed as v and returns
// the context to send it in: it is cancelled when the grant ends.
func (p *Proxy) holdGrant(ctx context.Context, v Verdict, c Call) (context.Context, *grantHold) {
	ctx, cancel := context.WithCancel(ctx)
	h := &grantHold{cancel: cancel, done: make(chan struct{})}
	gr := *v.Grant
	view, now := p.gate.cfg.Grants, p.gate.cfg.Now
	go func() {
		t := time.NewTicker(holdInterval)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			why := ""
			switch at := now(); {
			case !at.Before(gr.ExpiresAt):
				why = "the grant ended"
			case !view.Fresh():
				why = "the grant could not be confirmed with etcd"
			case findGrant(view.LiveGrants(gr.Subject, at), gr.ID) == nil:
				why = "the grant was revoked"
			}
			if why != "" {
				p.log.Info("stream cut", "decision_id", v.DecisionID, "grant", gr.ID, "task", v.Decision.Task, "reason", why)
				if c.upgrade != "" {
					// The switch was the call's outcome; the cut is recorded too.
					p.gate.Outcome(ctx, v, c, Outcome{Status: 101, Reason: "stream cut: " + why})
				}
				h.cut(why)
				return
			}
		}
	}()
	return ctx, h
}

// cut ends the stream: the call's context, and the connection of an
// upgraded one.
func (h *grantHold) cut(why string) {
	h.mu.Lock()
	h.why = why
	closers := h.closeT
	h.mu.Unlock()
	h.cancel()
	for _, c := range closers {
		_ = c.Close()
	}
}

// upgraded hands the hold an upgraded connection's two ends: the
// upstream's (the response body) and the caller's (taken over from sw).
func (h *grantHold) upgraded(upstream io.Closer, sw *statusWriter) {
	closers := []io.Closer{upstream}
	if sw != nil {
		closers = append(closers, closerFunc(sw.closeHijacked))
	}
	h.mu.Lock()
	cut := h.why != ""
	if !cut {
		h.closeT = closers
	}
	h.mu.Unlock()
	if cut {
		for _, c := range closers {
			_ = c.Close()
		}
	}
}

// stop ends the hold of a stream that has ended, and says why it was cut;
// "" when it was not.
func (h *grantHold) stop() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	if h.why == "" {
		return ""
	}
	return "stream cut: " + h.why
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }
