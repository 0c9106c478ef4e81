package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// client talks to the side API.
type client struct {
	g    *globals
	http *http.Client
}

func newClient(g *globals) (*client, error) {
	u, err := url.Parse(g.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("--server: %q is not an http(s) URL", g.server)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if g.caFile != "" {
		b, err := os.ReadFile(g.caFile)
		if err != nil {
			return nil, usageError("--ca-file: %v", err)
		}
		tr.TLSClientConfig.RootCAs = x509.NewCertPool()
		if !tr.TLSClientConfig.RootCAs.AppendCertsFromPEM(b) {
			return nil, usageError("--ca-file: %s holds no PEM certificate", g.caFile)
		}
	}
	return &client{g: g, http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}, nil
}

// fetch makes one call to the side API for cmd and decodes the answer as
// a T (a []byte takes it as it is).
func fetch[T any](cmd *cobra.Command, g *globals, method, path string, in any) (T, error) {
	var out T
	c, err := newClient(g)
	if err != nil {
		return out, err
	}
	err = c.do(cmd.Context(), method, path, in, &out)
	return out, err
}

// call makes one call to the side API and shows the answer: as JSON with
// -o json, else as asTable writes it. A command states its call and its
// table; call does the rest.
func call[T any](cmd *cobra.Command, g *globals, method, path string, in any, asTable func(io.Writer, T) error) error {
	v, err := fetch[T](cmd, g, method, path, in)
	if err != nil {
		return err
	}
	return show(cmd, g, v, asTable)
}

// problem is the part of an RFC 9457 answer the CLI shows.
type problem struct {
	Type       string `json:"type"`
	Status     int    `json:"status"`
	Title      string `json:"title"`
	Detail     string `json:"detail"`
	DecisionID string `json:"decision_id"`
	ExistingID string `json:"existing_id"`
}

// tokenExpired is the problem type of a 401 for a token past its exp.
const tokenExpired = "urn:elevate:problem:token-expired"

// Answers 429 (rate-limited) are tried again after the Retry-After the
// side API gives, up to retryAttempts calls in all, each wait at most
// maxRetryWait. The side API refuses such a call before doing anything, so
// trying again is safe whatever the method.
const (
	retryAttempts = 10
	maxRetryWait  = time.Minute
)

// do sends a JSON request and decodes a JSON answer into out (a *[]byte
// takes the answer as it is). Any non-2xx answer becomes an error of one
// line whose exit status says what failed: 3 when the server cannot be
// reached or did not accept the token, 1 for every other answer.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = marshalJSON(in); err != nil {
			return err
		}
	}
	var resp *http.Response
	var b []byte
	for attempt := 1; ; attempt++ {
		var err error
		if resp, b, err = c.send(ctx, method, path, body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt == retryAttempts {
			break
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"))
		if !ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if resp.StatusCode/100 != 2 {
		return c.answerError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", c.g.server, err)
	}
	return nil
}

// send makes one call and reads its answer.
func (c *client) send(ctx context.Context, method, path string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.g.server, "/")+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.g.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.g.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, exitError{code: exitNoServer, msg: fmt.Sprintf("cannot reach %s: %v", c.g.server, rootCause(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, nil, exitError{code: exitNoServer, msg: fmt.Sprintf("reading the answer of %s: %v", c.g.server, err)}
	}
	return resp, b, nil
}

// answerError is the error for a non-2xx answer.
func (c *client) answerError(status int, b []byte) error {
	code := exitFailed
	if status == http.StatusUnauthorized {
		code = exitNoServer
	}
	var p problem
	if json.Unmarshal(b, &p) != nil || p.Detail == "" {
		return exitError{code: code, msg: fmt.Sprintf("%d %s", status, http.StatusText(status))}
	}
	if status == http.StatusUnauthorized && p.Type == tokenExpired {
		return exitError{code: code, msg: expiredMessage(c.g.token)}
	}
	msg := fmt.Sprintf("%d %s: %s", status, http.StatusText(status), p.Detail)
	if p.DecisionID != "" {
		msg += " (decision " + p.DecisionID + ")"
	}
	if status == http.StatusUnauthorized && c.g.token == "" {
		msg += "; set --token or ELEVATE_TOKEN"
	}
	return exitError{code: code, msg: msg}
}

// expiredMessage says that token expired, when, and how to get another. The
// claims are read without verification: only to word the message.
func expiredMessage(token string) string {
	claims := unverifiedClaims(token)
	when := ""
	if exp, ok := claims.expiry(); ok {
		when = " at " + exp.UTC().Format(time.RFC3339)
	}
	sub := claims.Sub
	if !plainWord.MatchString(sub) { // printed in a command to paste
		sub = "NAME"
	}
	return fmt.Sprintf("401 Unauthorized: your token expired%s; get a new one from your identity provider, "+
		"or with serve --dev: elevate token --sub %s (and the --groups it had)", when, sub)
}

// tokenClaims are the claims of a token that the CLI reads without
// verifying it: only to word messages and to tell kubectl when a token
// expires. The server verifies every token.
type tokenClaims struct {
	Sub string   `json:"sub"`
	Exp *float64 `json:"exp"`
}

// unverifiedClaims reads the payload of a JWT; zero claims when it is not
// one.
func unverifiedClaims(token string) tokenClaims {
	var c tokenClaims
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	return c
}

// expiry is the token's exp, when it has a positive one.
func (c tokenClaims) expiry() (time.Time, bool) {
	if c.Exp == nil || *c.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(*c.Exp), 0), true
}

// plainWord is text a shell takes as it is.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9._@+=:,/-]+$`)

// retryAfter reads a Retry-After header: seconds or an HTTP date. A
// missing one means a second; a wait over maxRetryWait is not waited.
func retryAfter(v string) (time.Duration, bool) {
	var d time.Duration
	if v == "" {
		d = time.Second
	} else if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(time.Until(t), 0)
	} else {
		return 0, false
	}
	return d, d <= maxRetryWait
}

func rootCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
