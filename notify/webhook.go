package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
)

// payload is the JSON body posted to webhooks.
type payload struct {
	Text  string `json:"text"` // one line, Slack-compatible
	Event Event  `json:"event"`
}

// hook is one configured webhook, ready to post.
type hook struct {
	index  int
	url    string
	host   string
	events []string
	header string
	value  string
	client *http.Client
}

func newHook(i int, w Webhook, transport http.RoundTripper) (*hook, error) {
	u, _ := url.Parse(w.URL) // validated
	h := &hook{
		index:  i,
		url:    w.URL,
		host:   u.Host,
		events: slices.Clone(w.Events),
		header: http.CanonicalHeaderKey(w.HeaderName),
		client: &http.Client{
			Transport: transport,
			Timeout:   w.Timeout,
			// A redirect is not followed, so the secret header stays with
			// the configured endpoint; a 3xx counts as not delivered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if w.HeaderValueFile != "" {
		v, err := readSecret(fmt.Sprintf("notify.webhooks[%d].header_value_file", i), w.HeaderValueFile)
		if err != nil {
			return nil, err
		}
		h.value = v
	}
	return h, nil
}

func (h *hook) wants(kind string) bool {
	return len(h.events) == 0 || slices.Contains(h.events, kind)
}

func (h *hook) String() string { return fmt.Sprintf("webhook[%d] %s", h.index, h.host) }

// errStatus is wrapped by the error of a delivery answered with a status
// other than 2xx.
var errStatus = errors.New("unexpected status")

func (h *hook) deliver(ctx context.Context, e Event) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(payload{Text: slackText(e), Event: e}); err != nil {
		return permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, &body)
	if err != nil {
		return permanent(errors.New("cannot build the request"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "elevate")
	if h.header != "" {
		req.Header.Set(h.header, h.value)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// A *url.Error repeats the URL, which may be a secret: keep only
		// the cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return statusError(resp.StatusCode)
}

// statusError classifies the status of an answer: nil for 2xx; a permanent
// error for a redirect (not followed, so it would repeat) and for a 4xx
// other than 408 Request Timeout and 429 Too Many Requests (the endpoint
// refuses the request itself); any other status may pass on a later attempt.
func statusError(code int) error {
	switch {
	case code >= 200 && code <= 299:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return fmt.Errorf("%w %d", errStatus, code)
	case code >= 300 && code <= 499:
		return permanent(fmt.Errorf("%w %d", errStatus, code))
	default:
		return fmt.Errorf("%w %d", errStatus, code)
	}
}
