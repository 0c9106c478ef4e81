package main

import (
	"context"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/proxy/api"
)

// Shell completion: cobra's `elevate completion bash|zsh|fish|powershell`
// writes the script; the script asks `elevate __complete ...`, which calls
// the functions below. They ask the server named by --server (or
// ELEVATE_SERVER) with the caller's token, and give no completions at all
// when it cannot be reached or answers anything but 200 in time.

// completeFrom completes from the answer of GET path: the names (each
// maybe with a description after a tab) that names finds in it and that
// start with the word typed so far, ignoring case.
func completeFrom[T any](g *globals, path string, names func(T) []cobra.Completion) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		const none = cobra.ShellCompDirectiveNoFileComp
		if flagsFromEnv(cmd) != nil {
			return nil, none
		}
		c, err := newClient(g)
		if err != nil {
			return nil, none
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var answer T
		if c.do(ctx, "GET", path, nil, &answer) != nil {
			return nil, none
		}
		var out []cobra.Completion
		typed := strings.ToLower(toComplete)
		for _, n := range names(answer) {
			name, _, _ := strings.Cut(n, "\t")
			if strings.HasPrefix(strings.ToLower(name), typed) {
				out = append(out, n)
			}
		}
		return out, none
	}
}

// completeTargets completes --task, --role or --role-group (scope) from
// the server's task list.
func completeTargets(g *globals, scope string) cobra.CompletionFunc {
	return completeFrom(g, "/v1/tasks", func(l api.Tasks) []cobra.Completion {
		var out []cobra.Completion
		switch scope {
		case "task":
			for _, t := range l.Tasks {
				out = append(out, cobra.CompletionWithDesc(t.Name, t.Description))
			}
		case "role", "rolegroup":
			sets := l.Roles
			if scope == "rolegroup" {
				sets = l.RoleGroups
			}
			for _, s := range sets {
				out = append(out, cobra.CompletionWithDesc(s.Name, strings.Join(s.Tasks, ", ")))
			}
		}
		return out
	})
}

// completeUpstreams completes --upstream from the server's upstreams.
func completeUpstreams(g *globals) cobra.CompletionFunc {
	type upstreams struct {
		Upstreams []api.UpstreamInfo `json:"upstreams"`
	}
	return completeFrom(g, "/v1/upstreams", func(l upstreams) []cobra.Completion {
		var out []cobra.Completion
		for _, u := range l.Upstreams {
			out = append(out, u.Name)
		}
		return out
	})
}

// completePolicyIDs completes the ID argument of policy get and delete.
func completePolicyIDs(g *globals) cobra.CompletionFunc {
	return firstArg(completeFrom(g, "/v1/policies", func(l policyList) []cobra.Completion {
		var out []cobra.Completion
		for _, p := range l.Policies {
			out = append(out, cobra.CompletionWithDesc(p.ID, string(p.Scope)+" "+p.Target+" "+p.Approval))
		}
		return out
	}))
}

// firstArg completes the first argument with f, and no other.
func firstArg(f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

// completeRequestIDs completes the ID argument of request get, approve,
// deny and revoke: the requests the server lists in status (all when
// empty), one argument only.
func completeRequestIDs(g *globals, status grants.Status) cobra.CompletionFunc {
	path := "/v1/requests"
	if status != "" {
		path += "?" + url.Values{"status": {string(status)}}.Encode()
	}
	return firstArg(completeFrom(g, path, func(l requestList) []cobra.Completion {
		var out []cobra.Completion
		for _, r := range l.Requests {
			out = append(out, cobra.CompletionWithDesc(r.ID, string(r.Status)+" "+string(r.Scope)+" "+r.Target+" by "+r.Requester))
		}
		return out
	}))
}
