// Threats proved mitigated here: slow-client denial of service
// ("slowloris") against either listener. A client that trickles its
// headers is cut off by read_header_timeout
// (TestSlowClients/slow-headers/*), an idle keep-alive connection by
// idle_timeout (TestSlowClients/idle-keep-alive/*), a trickled body by
// read_timeout (TestSlowClients/slow-body/*), and a crowd of such clients
// does not keep a normal call from being answered
// (TestSlowClientCrowd). Every bound below is generous: it tells a closed
// connection from one held open, and measures no speed.
package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shortTimeouts are the timeouts of the listeners under test; the defaults
// (10s, 120s, 30s) would make these tests slow.
const shortTimeouts = `
proxy:
  read_header_timeout: 1s
  read_timeout: 2s
  idle_timeout: 2s
api:
  read_header_timeout: 1s
  read_timeout: 2s
  idle_timeout: 2s
`

// closeBound is how long a test waits for the server to close a
// connection that a timeout of at most 2s should end.
const closeBound = 10 * time.Second

func startShortTimeouts(t *testing.T) *server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(shortTimeouts), 0o600))
	return startDev(t, "--config", cfg)
}

// trickle writes b one byte every 200 ms until the connection fails or
// stop closes; it reports whether it wrote everything.
func trickle(c net.Conn, b []byte, stop <-chan struct{}) (done <-chan bool) {
	out := make(chan bool, 1)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for i := range b {
			select {
			case <-stop:
				out <- false
				return
			case <-t.C:
			}
			if _, err := c.Write(b[i : i+1]); err != nil {
				out <- false
				return
			}
		}
		out <- true
	}()
	return out
}

// endlessHeaders is a request whose header section never ends.
func endlessHeaders(host string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", host)
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "X-Slow-%d: a\r\n", i)
	}
	return []byte(b.String())
}

func TestSlowClients(t *testing.T) {
	s := startShortTimeouts(t)
	bob := s.token("--sub", "bob")
	listeners := []struct {
		name, addr string
		// get is a complete request that answers 200 on this listener.
		get string
		// post is a request head with a body to follow.
		post string
	}{
		{name: "proxy", addr: s.proxyAddr,
			get:  "GET /exchange/mailboxes HTTP/1.1\r\nHost: " + s.proxyAddr + "\r\nAuthorization: Bearer " + bob + "\r\n\r\n",
			post: "POST /exchange/mailboxes/alice/search HTTP/1.1\r\nHost: " + s.proxyAddr + "\r\nAuthorization: Bearer " + bob + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
		{name: "control", addr: s.controlAddr,
			get:  "GET /healthz HTTP/1.1\r\nHost: " + s.controlAddr + "\r\n\r\n",
			post: "POST /v1/check HTTP/1.1\r\nHost: " + s.controlAddr + "\r\nAuthorization: Bearer " + bob + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
	}
	for _, l := range listeners {
		t.Run("slow-headers/"+l.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
			require.NoError(t, err)
			defer c.Close()
			stop := make(chan struct{})
			defer close(stop)
			done := trickle(c, endlessHeaders(l.addr), stop)
			require.NoError(t, closedByServer(c, closeBound))
			select {
			case all := <-done:
				require.False(t, all, "the headers were never meant to end")
			default:
			}
		})
		t.Run("idle-keep-alive/"+l.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
			require.NoError(t, err)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(closeBound))
			_, err = c.Write([]byte(l.get))
			require.NoError(t, err)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, err = io.Copy(io.Discard, resp.Body)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.False(t, resp.Close, "the server offers to keep the connection")
			// Now say nothing: the server closes the connection.
			_, err = br.ReadByte()
			require.Error(t, err)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept an idle connection open for %s", closeBound)
		})
		t.Run("slow-body/"+l.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write([]byte(l.post))
			require.NoError(t, err)
			stop := make(chan struct{})
			defer close(stop)
			done := trickle(c, []byte(strings.Repeat(" ", 100000)), stop)
			require.NoError(t, closedByServer(c, closeBound))
			select {
			case all := <-done:
				require.False(t, all, "the body was never meant to end")
			default:
			}
		})
	}
}

// TestSlowClientCrowd: while a crowd of clients trickles headers at both
// listeners, normal calls are answered. The header timeout here outlasts
// the test, so the crowd holds its connections the whole time: a server
// that served a bounded number of connections would leave the calls
// waiting for a slot beyond the client's timeout.
func TestSlowClientCrowd(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("proxy: {read_header_timeout: 5m}\napi: {read_header_timeout: 5m}\n"), 0o600))
	s := startDev(t, "--config", cfg)
	bob := s.token("--sub", "bob")
	const crowd = 100 // per listener
	stop := make(chan struct{})
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, addr := range []string{s.proxyAddr, s.controlAddr} {
		for range crowd {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					open.Add(1)
					<-trickle(c, endlessHeaders(addr), stop)
					open.Add(-1)
					c.Close()
				}
			}()
		}
	}
	defer func() { close(stop); wg.Wait() }()
	require.Eventually(t, func() bool { return open.Load() >= 2*crowd*9/10 }, 20*time.Second, 50*time.Millisecond,
		"the crowd never gathered")

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 5 {
		require.GreaterOrEqual(t, open.Load(), int64(crowd), "the crowd is still there at call %d", i)
		resp, err := client.Get("http://" + s.controlAddr + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		req, err := http.NewRequest("GET", "http://"+s.proxyAddr+"/exchange/mailboxes", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err = client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}
