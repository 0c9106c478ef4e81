package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem document. Every refusal elevate gives, on
// the proxy listener and on the side API, has this shape. Detail and the
// extension fields are written for the caller; internal error text never goes
// here.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`

	// DecisionID is also the id of the audit record of this refusal.
	DecisionID string `json:"decision_id,omitempty"`
	Task       string `json:"task,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Request is the command that asks for the missing grant.
	Request string `json:"request_command,omitempty"`
	// ExistingID names the pending request a duplicate collides with.
	ExistingID string `json:"existing_id,omitempty"`

	// kube sends the problem as a Kubernetes Status (statusBody), to a
	// client of a kubernetes upstream.
	kube bool
}

// problemType turns a short slug into the problem type URI.
func problemType(slug string) string { return "urn:elevate:problem:" + slug }

// NewProblem builds a problem with the standard title for status.
func NewProblem(status int, slug, detail string) *Problem {
	return &Problem{Type: problemType(slug), Title: http.StatusText(status), Status: status, Detail: detail}
}

// body is the problem as JSON. Nothing is HTML-escaped: request_command
// must be copied from curl's output as it is, `<why>` included.
func (p *Problem) body() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p) // ends with "\n"
	return buf.Bytes()
}

// Write sends the problem on w.
func (p *Problem) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.DecisionID != "" {
		h.Set("Elevate-Decision-Id", p.DecisionID)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(p.body())
}

// response renders the problem as an *http.Response for the proxy engine.
func (p *Problem) response(req *http.Request, extra http.Header) *http.Response {
	b, ctype := p.body(), "application/problem+json"
	if p.kube {
		b, ctype = p.statusBody(), "application/json"
	}
	h := http.Header{}
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if p.DecisionID != "" {
		h.Set("Elevate-Decision-Id", p.DecisionID)
	}
	for k, v := range extra {
		h[k] = v
	}
	return &http.Response{
		StatusCode:    p.Status,
		Status:        strconv.Itoa(p.Status) + " " + http.StatusText(p.Status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
		Request:       req,
	}
}
