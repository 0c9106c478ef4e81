package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
	hj   hijackedConn
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	if w.taken() {
		return // the connection is relayed already (relayUpgrade)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.taken() {
		return 0, http.ErrHijacked
	}
	return w.ResponseWriter.Write(b)
}

// taken reports whether the connection was taken over by an upgrade.
func (w *statusWriter) taken() bool { return w.hj.taken.Load() }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// ReadFrom relays a response body with the connection's own pooled
// buffer instead of a new one per call.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes through to the connection.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets the engine take over CONNECT tunnels.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hj.taken.Store(true)
		w.hj.mu.Lock()
		w.hj.conn = conn
		if w.hj.closed {
			_ = conn.Close()
		}
		w.hj.mu.Unlock()
	}
	return conn, rw, err
}

// writerKey carries the listener's statusWriter in a call's context, so
// that an upgraded call's connection can be closed when its grant ends.
type writerKey struct{}

func writerFrom(ctx context.Context) *statusWriter {
	sw, _ := ctx.Value(writerKey{}).(*statusWriter)
	return sw
}

// hijackedConn is the connection taken over by an upgrade, and whether it
// is to be closed (closeHijacked) as soon as it is taken.
type hijackedConn struct {
	taken  atomic.Bool // read on every write, without the lock
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// closeHijacked closes the connection an upgrade took over, now or, when
// it is not taken yet, as soon as it is.
func (w *statusWriter) closeHijacked() {
	w.hj.mu.Lock()
	defer w.hj.mu.Unlock()
	w.hj.closed = true
	if w.hj.conn != nil {
		_ = w.hj.conn.Close()
	}
}
