package proxy

// Relaying a switched protocol that the proxy engine does not relay
// itself: it relays WebSocket, and elevate relays the SPDY/3.1 streams
// that kubectl falls back to for exec, attach and port-forward.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
)

// relayUpgrade answers the caller with the upstream's 101, takes over the
// caller's connection and relays bytes both ways until either side ends;
// then both are closed. It returns what the engine still writes: nothing,
// on a connection already taken over.
func (p *Proxy) relayUpgrade(resp *http.Response, sw *statusWriter) *http.Response {
	upstream, ok := resp.Body.(io.ReadWriteCloser)
	if sw == nil || !ok {
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		prob := NewProblem(http.StatusBadGateway, "upgrade-failed", "the switched connection could not be relayed")
		prob.kube = true
		return prob.response(resp.Request, nil)
	}
	conn, brw, err := sw.Hijack()
	if err != nil {
		_ = upstream.Close()
		p.log.Warn("upgrade: the caller's connection could not be taken over", "err", err)
		return emptyAnswer(resp)
	}
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	if _, err := brw.WriteString(head); err == nil {
		if err = resp.Header.Write(brw); err == nil {
			_, _ = brw.WriteString("\r\n")
		}
	}
	if err := brw.Flush(); err != nil {
		_ = upstream.Close()
		_ = conn.Close()
		return emptyAnswer(resp)
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = upstream.Close()
			sw.closeHijacked()
		})
	}
	done := make(chan struct{}, 2)
	go func() {
		// What the caller sent after its request, already read by the
		// server, comes first.
		_, _ = io.Copy(upstream, bufferedThen(brw.Reader, conn))
		closeBoth()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, upstream)
		closeBoth()
		done <- struct{}{}
	}()
	<-done
	<-done
	return emptyAnswer(resp)
}

// bufferedThen reads what br holds, then r.
func bufferedThen(br *bufio.Reader, r io.Reader) io.Reader {
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		return io.MultiReader(bytes.NewReader(slices.Clone(b)), r)
	}
	return r
}

// emptyAnswer is resp without a body, for the engine to "write" on a
// connection that is taken over already.
func emptyAnswer(resp *http.Response) *http.Response {
	resp.Body = http.NoBody
	resp.ContentLength = 0
	return resp
}
