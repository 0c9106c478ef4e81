package etcdtest

import (
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Relay is a TCP relay from a loopback port of its own to a target
// address. While it is cut, every connection through it is closed and new
// ones are closed as soon as they arrive, as if the process behind it had
// ended.
type Relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// NewRelay starts a relay to target, a host:port or an http:// URL.
func NewRelay(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]struct{}{}}
	go r.serve()
	return r, nil
}

// Addr returns the relay's own host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// SetCut cuts the relay (closing every connection through it) or restores
// it.
func (r *Relay) SetCut(cut bool) {
	r.mu.Lock()
	r.cut = cut
	var conns []net.Conn
	if cut {
		for c := range r.conns {
			conns = append(conns, c)
		}
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Close stops the relay and closes every connection through it.
func (r *Relay) Close() {
	r.ln.Close()
	r.SetCut(true)
}

func (r *Relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c)
	}
}

func (r *Relay) relay(c net.Conn) {
	r.mu.Lock()
	cut := r.cut
	r.mu.Unlock()
	if cut {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", r.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	if r.cut {
		r.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	r.conns[c], r.conns[u] = struct{}{}, struct{}{}
	r.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, u)
	r.mu.Unlock()
}
