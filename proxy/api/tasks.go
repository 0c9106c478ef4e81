package api

import (
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
)

// Tasks is the answer of GET /v1/tasks: what the loaded policy bundle lets
// callers request, each list sorted by name.
type Tasks struct {
	Tasks      []TaskEntry `json:"tasks"`
	Roles      []SetEntry  `json:"roles"`
	RoleGroups []SetEntry  `json:"role_groups"`
}

// TaskEntry is one task of the catalog.
type TaskEntry struct {
	Name string `json:"name"`
	policy.TaskInfo
}

// SetEntry is a role or role group with the tasks it covers.
type SetEntry struct {
	Name  string   `json:"name"`
	Tasks []string `json:"tasks"`
}

// TaskList is the catalog as GET /v1/tasks answers it. With upstream set,
// only the tasks of that upstream, and the roles and role groups covering
// one of them, are listed.
func TaskList(cat policy.Catalog, upstream string) Tasks {
	out := Tasks{Tasks: []TaskEntry{}, Roles: []SetEntry{}, RoleGroups: []SetEntry{}}
	for _, name := range slices.Sorted(maps.Keys(cat.Tasks)) {
		if info := cat.Tasks[name]; upstream == "" || info.Upstream == upstream {
			out.Tasks = append(out.Tasks, TaskEntry{Name: name, TaskInfo: info})
		}
	}
	sets := func(m map[string][]string) []SetEntry {
		list := []SetEntry{}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			tasks := m[name]
			if upstream == "" || slices.ContainsFunc(tasks, func(t string) bool { return cat.Tasks[t].Upstream == upstream }) {
				list = append(list, SetEntry{Name: name, Tasks: slices.Clone(tasks)})
			}
		}
		return list
	}
	out.Roles, out.RoleGroups = sets(cat.Roles), sets(cat.RoleGroups)
	return out
}

// tasks answers GET /v1/tasks[?upstream=U]; an upstream that neither the
// configuration nor the catalog knows is refused, with the nearest name.
func (s *Server) tasks(w http.ResponseWriter, r *http.Request, c caller) {
	cat := s.cfg.Catalog.Catalog()
	upstream := r.URL.Query().Get("upstream")
	if upstream != "" {
		known := map[string]bool{}
		for _, u := range s.cfg.Upstreams {
			known[u.Name] = true
		}
		for _, t := range cat.Tasks {
			known[t.Upstream] = true
		}
		if !known[upstream] {
			s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "invalid",
				"upstream: no upstream named "+strconv.Quote(upstream)+didYouMean(slices.Collect(maps.Keys(known)), upstream)))
			return
		}
		for _, u := range s.cfg.Upstreams {
			if u.Name == upstream && u.Type == proxy.TypeKubernetes {
				// One catalog serves every kubernetes upstream.
				upstream = proxy.TypeKubernetes
			}
		}
	}
	writeJSON(w, http.StatusOK, TaskList(cat, upstream))
}

// targetNames are the names a target of scope may take.
func targetNames(cat policy.Catalog, scope string) []string {
	switch scope {
	case policy.ScopeTask:
		return slices.Collect(maps.Keys(cat.Tasks))
	case policy.ScopeRole:
		return slices.Collect(maps.Keys(cat.Roles))
	case policy.ScopeRoleGroup:
		return slices.Collect(maps.Keys(cat.RoleGroups))
	}
	return nil
}

// didYouMean is `; did you mean "NAME"?` for the name nearest to typed, or
// "" when no name is near enough to be what was meant. The name, from the
// catalog or the configuration, is shown as it is, to be copied (a task's
// backslash is not doubled).
func didYouMean(names []string, typed string) string {
	if best := policy.Nearest(names, typed); best != "" {
		return `; did you mean "` + best + `"?`
	}
	return ""
}
