package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
)

// TestKubeExecStreamCutOnRevoke: an exec allowed by a grant switches
// protocols (WebSocket, which the proxy engine relays, and SPDY/3.1, which
// elevate relays itself), carries bytes both ways, and is closed, on the
// caller's side too, when the grant is revoked.
func TestKubeExecStreamCutOnRevoke(t *testing.T) {
	for _, up := range []string{"websocket", "SPDY/3.1"} {
		t.Run(up, func(t *testing.T) {
			e := newKubeEnv(t)
			const task = `Kubernetes\exec pods`
			const target = "/k8s/api/v1/namespaces/prod/pods/web/exec?command=cat&stdin=true&stdout=true"
			pol := e.policy(t, task, "alice", "POST", target)
			req := e.grant(t, pol, "alice", task, grants.Constraint{"namespace": "prod", "name": "web"})

			conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
			method := "POST"
			if up == "websocket" {
				method = "GET"
			}
			_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: elevate.test\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
				method, target, e.caller("alice"), up)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			require.True(t, strings.EqualFold(resp.Header.Get("Upgrade"), up), resp.Header)

			// Both ways: what the caller writes comes back.
			_, err = io.WriteString(conn, "ping\n")
			require.NoError(t, err)
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "ping\n", line)

			_, err = e.store.Revoke(context.Background(), req.ID, grants.Actor{Subject: "alice"}, "done")
			require.NoError(t, err)
			// The caller's connection ends: a read fails at once rather
			// than at the deadline, and the cut is on the record.
			_, err = br.ReadString('\n')
			require.Error(t, err)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the stream outlived its grant: %v", err)
			id := resp.Header.Get("Elevate-Decision-Id")
			require.Eventually(t, func() bool {
				b, err := os.ReadFile(e.logPath)
				return err == nil && strings.Contains(string(b), `"ref":"`+id+`"`) &&
					strings.Contains(string(b), `"reason":"stream cut: the grant was revoked"`)
			}, 10*time.Second, 10*time.Millisecond, "the cut is in the audit log")
		})
	}
}
