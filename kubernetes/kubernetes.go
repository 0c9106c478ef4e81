// Package kubernetes reads a call to the Kubernetes API the way the API
// server reads it, so that what elevate judges is what the API server
// authorizes: the method, the decoded path segments and the parsed query
// become Attributes (verb, group, version, resource, subresource,
// namespace, name; or a non-resource path), with the dry-run and watch
// flags and the selectors.
//
// The reading follows kube-apiserver's request-info rules:
//
//   - /api/VERSION/... is the core group, /apis/GROUP/VERSION/... a named
//     group; shorter paths (/api, /api/v1, /apis, /apis/GROUP,
//     /apis/GROUP/VERSION) and every other path (/version, /openapi/v3,
//     /healthz, /metrics, ...) are non-resource paths whose verb is the
//     lower-case method.
//   - namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]] is a namespaced resource;
//     namespaces/NS is the namespace object itself (resource "namespaces",
//     name and namespace NS) and namespaces/NS/status and
//     namespaces/NS/finalize its subresources.
//   - GET and HEAD are get, or list without a name, or watch without a name
//     when ?watch is true; POST is create, PUT update, PATCH patch, DELETE
//     delete, or deletecollection without a name. The deprecated /watch/
//     prefix (/api/v1/watch/namespaces/NS/pods) is watch.
//   - a list or watch whose field selector requires metadata.name=X names
//     X, as the API server tells its authorizers.
//
// On top of that, Parse refuses (with an *Error wrapping ErrRefused) every
// call that a server, a proxy in between or a person reading the audit could
// read as another one, and every spelling that no Kubernetes client sends:
//
//   - segments "." and "..", empty segments ("//" or a trailing "/"),
//     segments holding "/" (an encoded slash), "%", "\", "?", "#",
//     control bytes, spaces or non-ASCII bytes. The API server splits the
//     decoded path on "/", so an encoded slash in a name would move every
//     later part; it refuses such names itself (path segment name rules).
//   - a group, version, resource, subresource or namespace that is not in
//     lower case and within the API server's name rules: a namespace is a
//     DNS-1123 label, a group a DNS-1123 subdomain, a version, resource or
//     subresource a DNS-1035-style label. The API server compares these
//     case-sensitively, so "Pods" is not "pods" to it; elevate refuses the
//     spelling rather than judge a task nobody can hold. Object names keep
//     their case (RBAC names such as "system:Foo" are valid).
//   - resource "namespaces" inside a namespace (namespaces/NS/namespaces/X):
//     namespaces are cluster-scoped, and the API server would read it as
//     the namespace X, like namespaces/X.
//   - a ?watch value other than "true", "1", "false" or "0", or given twice:
//     the API server reads any other value, even an empty one, as true;
//     ?watch on a call that cannot watch (a named get, a write); the /watch/
//     prefix with a method other than GET or HEAD.
//   - ?dryRun with any value but "All"; a watch, dryRun, fieldSelector or
//     labelSelector parameter given twice, or spelled in another case
//     (the API server reads only the exact name, and only its first value).
//   - the removed /proxy/ verb prefix, parts after a subresource other
//     than proxy (pods/NAME/proxy/PATH keeps its path in Rest), and methods
//     other than GET, HEAD, POST, PUT, PATCH and DELETE.
//
// Method overrides and the request body are judged elsewhere.
package kubernetes

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRefused is wrapped by every call that Parse will not read.
var ErrRefused = errors.New("kubernetes call refused")

// Error says which rule a refused call broke, in words safe to show.
type Error struct{ Reason string }

func (e *Error) Error() string { return "kubernetes call refused: " + e.Reason }

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *Error) Unwrap() error { return ErrRefused }

func refuse(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Attributes are what the API server derives from a call, the words its
// authorizers (and elevate's policy) decide on.
type Attributes struct {
	// NonResource is true for discovery and other paths outside a
	// resource (/version, /apis/apps/v1, /healthz); only Verb and Path
	// are set then.
	NonResource bool `json:"non_resource"`
	// Path is the judged path, "/" and the segments joined by "/".
	Path string `json:"path"`
	// Verb is the Kubernetes verb (get, list, watch, create, update,
	// patch, delete, deletecollection) for a resource, the lower-case
	// method for a non-resource path.
	Verb        string `json:"verb"`
	APIGroup    string `json:"group"` // "" for the core group
	APIVersion  string `json:"version"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	// NameFromFieldSelector is true when Name comes from a list or watch
	// with the field selector metadata.name=Name, not from the path.
	NameFromFieldSelector bool `json:"name_from_field_selector,omitempty"`
	// Rest holds the segments after a proxy subresource
	// (pods/NAME/proxy/REST...).
	Rest []string `json:"rest,omitempty"`
	// WatchPrefix is true for the deprecated /watch/ prefix.
	WatchPrefix   bool   `json:"watch_prefix,omitempty"`
	Watch         bool   `json:"watch"`
	DryRun        bool   `json:"dry_run"`
	FieldSelector string `json:"field_selector,omitempty"`
	LabelSelector string `json:"label_selector,omitempty"`
}

// namespaceSubresources are the subresources of a namespace object, which
// the API server tells apart from a resource inside the namespace.
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

// actionSubresources are subresources that are an action of their own
// rather than a part of the object: their task is named by the action.
var actionSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true, "log": true, "proxy": true}

// Parse reads one call: its method, the decoded path segments (nil or
// empty for "/") and the parsed query.
func Parse(method string, segs []string, query map[string][]string) (Attributes, error) {
	for _, s := range segs {
		if err := checkSegment(s); err != nil {
			return Attributes{}, err
		}
	}
	if err := checkQueryNames(query); err != nil {
		return Attributes{}, err
	}
	a := Attributes{Path: "/" + strings.Join(segs, "/")}
	var ok bool
	if a.Verb, ok = methodVerbs[method]; !ok {
		return Attributes{}, refuse("method %q is not a Kubernetes verb", method)
	}
	watch, err := watchParam(query)
	if err != nil {
		return Attributes{}, err
	}
	if a.DryRun, err = dryRunParam(query); err != nil {
		return Attributes{}, err
	}
	a.FieldSelector = first(query["fieldSelector"])
	a.LabelSelector = first(query["labelSelector"])

	parts, ok := resourceParts(&a, segs)
	if !ok {
		a.NonResource = true
		a.Verb = strings.ToLower(method)
		if watch {
			return Attributes{}, refuse("?watch on a non-resource path")
		}
		return a, nil
	}
	if a.APIGroup != "" {
		if err := checkGroup(a.APIGroup); err != nil {
			return Attributes{}, err
		}
	}
	if err := checkDNSLabel("version", a.APIVersion, true); err != nil {
		return Attributes{}, err
	}
	switch parts[0] {
	case "proxy":
		return Attributes{}, refuse("the /proxy/ prefix is not served; use the proxy subresource")
	case "watch":
		if method != "GET" && method != "HEAD" {
			return Attributes{}, refuse("the /watch/ prefix with method %s", method)
		}
		a.WatchPrefix, a.Verb = true, "watch"
		parts = parts[1:]
		if len(parts) == 0 {
			return Attributes{}, refuse("no resource after /watch/")
		}
	}

	if parts[0] == "namespaces" && len(parts) > 1 {
		a.Namespace = parts[1]
		if err := checkDNSLabel("namespace", a.Namespace, false); err != nil {
			return Attributes{}, err
		}
		if len(parts) > 2 && !namespaceSubresources[parts[2]] {
			parts = parts[2:]
			if parts[0] == "namespaces" {
				return Attributes{}, refuse("namespaces are not inside a namespace")
			}
		}
	}
	a.Resource = parts[0]
	if err := checkDNSLabel("resource", a.Resource, true); err != nil {
		return Attributes{}, err
	}
	if len(parts) > 1 {
		a.Name = parts[1]
		if len(a.Name) > maxSubdomain {
			return Attributes{}, refuse("name longer than %d characters", maxSubdomain)
		}
	}
	if len(parts) > 2 {
		a.Subresource = parts[2]
		if err := checkDNSLabel("subresource", a.Subresource, true); err != nil {
			return Attributes{}, err
		}
		if len(parts) > 3 {
			if a.Subresource != "proxy" {
				return Attributes{}, refuse("path goes on after subresource %s", a.Subresource)
			}
			a.Rest = append([]string{}, parts[3:]...)
		}
	}

	switch {
	case a.WatchPrefix:
		a.Watch = true
	case a.Name == "" && a.Verb == "get":
		a.Verb, a.Watch = "list", watch
		if watch {
			a.Verb = "watch"
		}
	case a.Name == "" && a.Verb == "delete":
		a.Verb = "deletecollection"
	}
	if watch && !a.Watch {
		return Attributes{}, refuse("?watch on a %s", a.Verb)
	}
	if a.Name == "" && (a.Verb == "list" || a.Verb == "watch") {
		if name, ok := selectedName(a.FieldSelector); ok {
			a.Name, a.NameFromFieldSelector = name, true
		}
	}
	return a, nil
}

// methodVerbs maps the accepted methods to the verb of a resource call.
var methodVerbs = map[string]string{
	"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
}

// resourceParts tells a resource path from a non-resource one, as the API
// server does (at least three parts under /api, four under /apis), and
// fills the group and version. It returns the parts after the version.
func resourceParts(a *Attributes, segs []string) ([]string, bool) {
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		a.APIVersion = segs[1]
		return segs[2:], true
	case len(segs) >= 4 && segs[0] == "apis":
		a.APIGroup, a.APIVersion = segs[1], segs[2]
		return segs[3:], true
	}
	return nil, false
}

// Segments encodes the attributes of a resource call back into the path
// segments that Parse read them from; a non-resource call gives its Path.
func (a Attributes) Segments() []string {
	if a.NonResource {
		if a.Path == "/" {
			return []string{}
		}
		return strings.Split(strings.TrimPrefix(a.Path, "/"), "/")
	}
	segs := []string{"api"}
	if a.APIGroup != "" {
		segs = []string{"apis", a.APIGroup}
	}
	segs = append(segs, a.APIVersion)
	if a.WatchPrefix {
		segs = append(segs, "watch")
	}
	name := a.Name
	if a.NameFromFieldSelector {
		name = ""
	}
	if a.Namespace != "" {
		segs = append(segs, "namespaces", a.Namespace)
		if a.Resource == "namespaces" && name == a.Namespace {
			if a.Subresource != "" {
				segs = append(segs, a.Subresource)
			}
			return segs
		}
	}
	segs = append(segs, a.Resource)
	if name != "" {
		segs = append(segs, name)
		if a.Subresource != "" {
			segs = append(segs, a.Subresource)
			segs = append(segs, a.Rest...)
		}
	}
	return segs
}

// TaskName names the task a call is: Kubernetes\VERB RESOURCE[/SUB].
//
//   - A subresource that is an action of its own (exec, attach,
//     portforward, log, proxy) names the verb, whatever the method:
//     Kubernetes\exec pods, Kubernetes\log pods. Other subresources follow
//     the resource: Kubernetes\update deployments/scale,
//     Kubernetes\patch pods/status.
//   - Resources of Kubernetes' own groups (the core group, groups without
//     a dot such as apps and batch, and *.k8s.io and *.kubernetes.io,
//     which custom resources may not use unapproved) are named alone;
//     other groups' resources, custom resources, carry their group as
//     RBAC and kubectl write it: Kubernetes\delete certificates.cert-manager.io.
//   - Discovery (see Read) is one task, Kubernetes\discovery. Other
//     non-resource paths are named by verb and first segment, with "/*"
//     when the path goes on, as RBAC's nonResourceURLs are:
//     Kubernetes\get /metrics, Kubernetes\get /logs/*. HEAD counts as get.
func TaskName(a Attributes) string {
	if a.NonResource {
		if discovery(a) {
			return `Kubernetes\discovery`
		}
		verb := a.Verb
		if verb == "head" {
			verb = "get"
		}
		segs := a.Segments()
		if len(segs) == 0 {
			return `Kubernetes\` + verb + " /"
		}
		path := "/" + segs[0]
		if len(segs) > 1 {
			path += "/*"
		}
		return `Kubernetes\` + verb + " " + path
	}
	resource := a.Resource
	if !builtinGroup(a.APIGroup) {
		resource += "." + a.APIGroup
	}
	verb := a.Verb
	switch {
	case actionSubresources[a.Subresource]:
		verb = a.Subresource
	case a.Subresource != "":
		resource += "/" + a.Subresource
	}
	return `Kubernetes\` + verb + " " + resource
}

// Read reports whether a call only reads what elevate passes by default:
// discovery, and get, list and watch of any resource but secrets, except
// through an action subresource (logs, exec, attach, port-forward and
// proxy are gated by default: their output can hold anything).
func Read(a Attributes) bool {
	if a.NonResource {
		return discovery(a)
	}
	switch a.Verb {
	case "get", "list", "watch":
	default:
		return false
	}
	return a.Resource != "secrets" && !actionSubresources[a.Subresource]
}

// discovery reports whether a non-resource call reads the API server's
// description of itself: /, /api, /api/VERSION, /apis, /apis/GROUP,
// /apis/GROUP/VERSION, /version, /openapi/..., the health checks /healthz,
// /livez and /readyz, and the service-account issuer documents.
func discovery(a Attributes) bool {
	if !a.NonResource || a.Verb != "get" && a.Verb != "head" {
		return false
	}
	segs := a.Segments()
	if len(segs) == 0 {
		return true
	}
	switch segs[0] {
	case "api", "apis", "openapi", "healthz", "livez", "readyz":
		return true
	case "version":
		return len(segs) == 1
	case ".well-known":
		return a.Path == "/.well-known/openid-configuration"
	case "openid":
		return a.Path == "/openid/v1/jwks"
	}
	return false
}

// builtinGroup reports whether a group is one of Kubernetes' own.
func builtinGroup(g string) bool {
	return g == "" || !strings.Contains(g, ".") || strings.HasSuffix(g, ".k8s.io") || strings.HasSuffix(g, ".kubernetes.io") || g == "k8s.io" || g == "kubernetes.io"
}
