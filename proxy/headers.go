package proxy

// Header handling: the shape rules a request must meet before it is judged,
// the headers never forwarded (hop-by-hop, spoofable, the caller's
// credentials in any spelling) and elevate's own token in Authorization or
// Proxy-Authorization.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// refuseShape rejects requests whose framing or protocol could let bytes past
// the gate that were not judged. With rt nil it applies the rules for every
// call; with the call's route, websocket upgrades pass where the route
// allows them. kubeUpgrades leaves upgrades to kubeCall, for a call to a
// kubernetes upstream.
func refuseShape(r *http.Request, rt *route, kubeUpgrades bool) *Problem {
	if up := r.Header.Get("Upgrade"); !kubeUpgrades && (up != "" || r.Header.Get("HTTP2-Settings") != "") {
		websocket := strings.EqualFold(strings.TrimSpace(up), "websocket") && r.Header.Get("HTTP2-Settings") == ""
		if !websocket || (rt != nil && !rt.AllowWebsocket) {
			return NewProblem(http.StatusBadRequest, "upgrade-refused", "protocol upgrades are not allowed through elevate for this upstream")
		}
	}
	if headerBytes(r.Header) > MaxHeaderBytes {
		return NewProblem(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large",
			fmt.Sprintf("the request headers exceed %d bytes", MaxHeaderBytes))
	}
	if len(r.Header.Values("Content-Length")) > 1 {
		return NewProblem(http.StatusBadRequest, "bad-framing", "duplicate Content-Length")
	}
	if len(r.TransferEncoding) > 0 && r.Header.Get("Content-Length") != "" {
		return NewProblem(http.StatusBadRequest, "bad-framing", "both Content-Length and Transfer-Encoding")
	}
	return nil
}

// MaxHeaderBytes bounds the request headers elevate accepts, on the
// listener and inside intercepted tunnels alike.
const MaxHeaderBytes = 64 << 10

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// hopHeaders are connection-scoped and never forwarded (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// spoofable are headers a caller could use to lie about where a call came
// from or what it is, as headerName spells them; they are dropped and,
// where meaningful, set fresh.
var spoofable = headerNames(
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Real-Ip", "X-Original-Url",
	"X-Rewrite-Url", "X-Original-Uri", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl",
	"X-Url-Scheme", "X-Client-Ip", "True-Client-Ip", "X-Cluster-Client-Ip",
)

func headerNames(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, k := range names {
		m[headerName(k)] = true
	}
	return m
}

// headerName is a header's name as the most lenient upstream reads it:
// without regard to case, and with "_" read as "-" (CGI-style servers
// turn both into "_", so "X_Api_Key" reaches them as X-Api-Key). Go
// canonicalises the case of names it receives, not their underscores.
func headerName(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", "-"))
}

// delHeader removes every header that an upstream may read as name.
func delHeader(h http.Header, name string) {
	n := headerName(name)
	for k := range h {
		if headerName(k) == n {
			delete(h, k)
		}
	}
}

// cleanHeaders copies h without hop-by-hop headers, without every header the
// Connection header names, and without spoofable ones in any spelling.
func cleanHeaders(h http.Header) http.Header {
	out := h.Clone()
	stripHopHeaders(out)
	for k := range out {
		if spoofable[headerName(k)] {
			delete(out, k)
		}
	}
	return out
}

func stripHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// bearer extracts the token of an "Authorization: Bearer x" value.
func bearer(v string) (string, bool) {
	const p = "bearer "
	if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(v[len(p):])
	return t, t != ""
}

// credentialToken extracts elevate's token from an Authorization or
// Proxy-Authorization value: a Bearer token, or the password of Basic
// credentials, for tools that can only send a user name and a password
// (the user name is ignored: the token names the caller).
func credentialToken(v string) (string, bool) {
	if t, ok := bearer(v); ok {
		return t, true
	}
	const p = "basic "
	if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[len(p):]))
	if err != nil {
		return "", false
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	return pass, ok && pass != ""
}
