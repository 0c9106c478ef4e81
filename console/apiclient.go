package console

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// maxAPIAnswer bounds a side-API answer the console reads.
const maxAPIAnswer = 8 << 20

// problem is a side-API refusal as the console shows it.
type problem struct {
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	DecisionID string `json:"decision_id"`
}

// message is the alert text: the API's detail and the decision id that is
// also in the audit record.
func (p *problem) message() string {
	msg := p.Detail
	if msg == "" {
		msg = http.StatusText(p.Status)
	}
	if p.DecisionID != "" {
		msg += " (decision " + p.DecisionID + ")"
	}
	return msg
}

// recorder collects the side API's answer to an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(b) > maxAPIAnswer {
		r.over = true
		return len(b), nil
	}
	return r.body.Write(b)
}

// callAPI makes one side-API call in process, as the holder of token, and
// decodes a 2xx answer into out. The call carries the browser's address
// and context, so the API's rate limit, audit records and spans are those
// of any other call. Any other answer is returned as a problem.
func (c *Console) callAPI(r *http.Request, token, method, path string, in, out any) *problem {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			c.cfg.Logger.Error("console: encoding an API body failed", "path", path, "err", err)
			return &problem{Status: http.StatusInternalServerError, Detail: "internal error; nothing was changed"}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		c.cfg.Logger.Error("console: building an API call failed", "path", path, "err", err)
		return &problem{Status: http.StatusInternalServerError, Detail: "internal error; nothing was changed"}
	}
	req.RemoteAddr, req.Host, req.RequestURI = r.RemoteAddr, r.Host, path
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.over {
		return &problem{Status: http.StatusBadGateway, Detail: "the answer was too large to show"}
	}
	if rec.status < 200 || rec.status > 299 {
		p := &problem{}
		if err := json.Unmarshal(rec.body.Bytes(), p); err != nil || p.Detail == "" {
			p.Detail = "the API answered " + strconv.Itoa(rec.status) + " " + http.StatusText(rec.status)
		}
		p.Status = rec.status
		return p
	}
	if out != nil {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			c.cfg.Logger.Error("console: the API's answer did not decode", "path", path, "err", err)
			return &problem{Status: http.StatusBadGateway, Detail: "the API's answer could not be read"}
		}
	}
	return nil
}

// do is callAPI as the session's user.
func (c *Console) do(r *http.Request, ses *session, method, path string, in, out any) *problem {
	return c.callAPI(r, ses.token, method, path, in, out)
}

// refused shows a side-API refusal on page name, answering with the API's
// status. A 401 means the token is no longer accepted: the session ends and
// the browser signs in again.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, ses *session, p *problem, name string, v view) {
	if p.Status == http.StatusUnauthorized {
		c.sessions.end(ses)
		http.SetCookie(w, c.sessionCookieFor("", -1))
		if r.Method == http.MethodGet {
			redirect(w, "/auth/login?next="+url.QueryEscape(r.URL.RequestURI()))
			return
		}
		c.render(w, r, http.StatusUnauthorized, "error", view{Title: "Signed out",
			Error: "Your session has ended (" + p.Detail + "); sign in again and repeat the action."})
		return
	}
	v.Error = p.message()
	status := p.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	c.render(w, r, status, name, c.viewFor(ses, v))
}
