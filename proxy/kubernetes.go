package proxy

// Upstreams of type kubernetes: a call is read as the API server reads it
// (package kubernetes) and judged with input.kubernetes; elevate calls the
// API server with its own credential and impersonates the caller, so that
// Kubernetes RBAC still applies to the person; refusals are Kubernetes
// Status objects, which kubectl prints.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/elevate-pam/elevate/kubernetes"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// spdyProtocol is the Upgrade token of the streams kubectl falls back to
// when an API server does not take WebSocket.
const spdyProtocol = "SPDY/3.1"

// kubeUpgrades are the subresources whose calls may switch protocols:
// the streams of exec, attach and port-forward.
var kubeUpgrades = map[string]bool{"exec": true, "attach": true, "portforward": true}

// kubeCall reads a call to a kubernetes upstream into c: the attributes
// the API server derives (input.kubernetes), the task they name, and the
// attributes a grant's constraint and the audit record use. upgrade is
// the Upgrade header the caller sent, "" for none. A call the API server
// could read otherwise, an impersonation header, or an upgrade outside
// exec, attach and port-forward is refused with 400.
func kubeCall(c *Call, h http.Header) *Problem {
	for k := range h {
		if strings.HasPrefix(headerName(k), "impersonate-") {
			return NewProblem(http.StatusBadRequest, "impersonation-refused",
				"elevate impersonates you to the Kubernetes API server: kubectl --as, --as-group and --as-uid cannot be used through elevate")
		}
	}
	a, err := kubernetes.Parse(c.Method, c.Path, c.Query)
	if err != nil {
		detail := "the Kubernetes API call was refused"
		var ke *kubernetes.Error
		if errors.As(err, &ke) {
			detail += ": " + ke.Reason
		}
		return NewProblem(http.StatusBadRequest, "ambiguous-kubernetes-call", detail)
	}
	if up := strings.TrimSpace(h.Get("Upgrade")); up != "" || h.Get("HTTP2-Settings") != "" {
		if !kubeUpgrades[a.Subresource] || a.NonResource {
			return NewProblem(http.StatusBadRequest, "upgrade-refused", "only exec, attach and port-forward calls may switch protocols")
		}
		switch {
		case h.Get("HTTP2-Settings") != "":
			return NewProblem(http.StatusBadRequest, "upgrade-refused", "h2c upgrades are refused")
		case strings.EqualFold(up, "websocket"):
			c.upgrade = "websocket"
		case strings.EqualFold(up, spdyProtocol):
			c.upgrade = spdyProtocol
		default:
			return NewProblem(http.StatusBadRequest, "upgrade-refused",
				"exec, attach and port-forward streams switch to WebSocket or SPDY/3.1, not "+truncate(up, 32))
		}
	}
	task := kubernetes.TaskName(a)
	read := kubernetes.Read(a)
	in := map[string]any{
		"non_resource": a.NonResource, "path": a.Path, "verb": a.Verb,
		"watch": a.Watch, "dry_run": a.DryRun, "task": task, "read": read,
	}
	attrs := map[string]string{"verb": a.Verb}
	if !a.NonResource {
		for _, kv := range [...]struct {
			k, v string
			attr bool // also an attribute of the call (constraints, audit)
		}{
			{"group", a.APIGroup, true}, {"version", a.APIVersion, false}, {"resource", a.Resource, true},
			{"subresource", a.Subresource, true}, {"namespace", a.Namespace, true}, {"name", a.Name, true},
			{"field_selector", a.FieldSelector, false}, {"label_selector", a.LabelSelector, false},
		} {
			in[kv.k] = kv.v
			if kv.attr && kv.v != "" {
				attrs[kv.k] = kv.v
			}
		}
		if a.NameFromFieldSelector {
			in["name_from_field_selector"] = true
		}
		if len(a.Rest) > 0 {
			in["rest"] = slices.Clone(a.Rest)
		}
	} else {
		attrs["path"] = a.Path
	}
	if a.DryRun {
		attrs["dry_run"] = "true"
	}
	if a.Watch {
		attrs["watch"] = "true"
	}
	if cmd := c.Query["command"]; a.Subresource == "exec" && len(cmd) > 0 {
		attrs["command"] = truncate(strings.Join(cmd, " "), 1024)
	}
	c.Kubernetes, c.Attributes, c.stream = in, attrs, a.Watch || c.upgrade != "" || a.Subresource == "log" && c.Query.Get("follow") == "true"
	return nil
}

// vetSubject refuses a caller whose Impersonate-User would name one of
// the cluster's own users (system:admin, system:kube-controller-manager,
// system:serviceaccount:...): RBAC grants those far more than a person.
// A user_prefix that does not start with "system:" keeps every subject
// apart from them.
func (rt *route) vetSubject(id identity.Identity) string {
	if user := rt.Kubernetes.UserPrefix + id.Subject; strings.HasPrefix(strings.ToLower(user), "system:") {
		return "the subject " + strconv.Quote(id.Subject) + " would be impersonated as the Kubernetes system user " + strconv.Quote(user) + "; elevate never impersonates system: users"
	}
	return ""
}

// impersonate sets the Impersonate-* headers of a call forwarded to a
// kubernetes upstream: the caller's subject (after the user prefix) and
// those of the caller's groups, renamed by the group map, that the
// upstream lets through. No group elevate passes is a system: group.
func (rt *route) impersonate(h http.Header, id identity.Identity) {
	for k := range h {
		if strings.HasPrefix(headerName(k), "impersonate-") {
			delete(h, k)
		}
	}
	h.Set("Impersonate-User", rt.Kubernetes.UserPrefix+id.Subject)
	var groups []string
	for _, g := range id.Groups {
		if to, ok := rt.groupMap[g]; ok {
			g = to
		}
		if rt.groups[g] && kubeGroupAllowed(g) == nil && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	for _, g := range groups {
		h.Add("Impersonate-Group", g)
	}
}

// kubeStatus is the Kubernetes Status a refusal is sent as to a client of
// a kubernetes upstream: kubectl prints its message after
// "Error from server (REASON):".
type kubeStatus struct {
	Kind       string            `json:"kind"`
	APIVersion string            `json:"apiVersion"`
	Metadata   struct{}          `json:"metadata"`
	Status     string            `json:"status"`
	Message    string            `json:"message"`
	Reason     string            `json:"reason"`
	Details    *kubeStatusDetail `json:"details,omitempty"`
	Code       int               `json:"code"`
}

type kubeStatusDetail struct {
	Causes []kubeStatusCause `json:"causes"`
}

type kubeStatusCause struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// kubeReasons are the Status reasons of the statuses elevate refuses with.
var kubeReasons = map[int]string{
	http.StatusBadRequest:                   "BadRequest",
	http.StatusUnauthorized:                 "Unauthorized",
	http.StatusForbidden:                    "Forbidden",
	http.StatusNotFound:                     "NotFound",
	http.StatusMethodNotAllowed:             "MethodNotAllowed",
	http.StatusConflict:                     "Conflict",
	http.StatusRequestEntityTooLarge:        "RequestEntityTooLarge",
	http.StatusUnsupportedMediaType:         "UnsupportedMediaType",
	http.StatusTooManyRequests:              "TooManyRequests",
	http.StatusRequestHeaderFieldsTooLarge:  "BadRequest",
	http.StatusInternalServerError:          "InternalError",
	http.StatusServiceUnavailable:           "ServiceUnavailable",
	http.StatusBadGateway:                   "InternalError",
	http.StatusMisdirectedRequest:           "BadRequest",
	http.StatusProxyAuthRequired:            "Unauthorized",
	http.StatusRequestedRangeNotSatisfiable: "BadRequest",
}

// statusBody is p as a Kubernetes Status: the message is the problem's
// detail and the decision id, which is also the id of the audit record.
func (p *Problem) statusBody() []byte {
	s := kubeStatus{Kind: "Status", APIVersion: "v1", Status: "Failure", Code: p.Status}
	s.Reason = kubeReasons[p.Status]
	if s.Reason == "" {
		s.Reason = "Unknown"
	}
	s.Message = p.Detail
	if s.Message == "" {
		s.Message = p.Title
	}
	if p.DecisionID != "" {
		s.Message += " (elevate decision " + p.DecisionID + ")"
	}
	cause := kubeStatusCause{Reason: strings.TrimPrefix(p.Type, "urn:elevate:problem:"), Message: p.Reason}
	if p.Request != "" {
		cause.Field, cause.Message = "elevate.request_command", p.Request
	}
	if cause.Message != "" {
		s.Details = &kubeStatusDetail{Causes: []kubeStatusCause{cause}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return buf.Bytes()
}

// kubeTarget reports whether a raw request target is on the prefix of a
// kubernetes upstream, for refusals given before the route is known.
func (p *Proxy) kubeTarget(target string) bool {
	for _, rt := range p.routes {
		if rt.kubePrefix != "" && strings.HasPrefix(target, rt.kubePrefix) {
			return true
		}
	}
	return false
}
