package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/proxy/api"
)

func requestCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "request", Short: "Ask for, decide and list access requests"}
	c.AddCommand(requestCreateCmd(g), requestListCmd(g), requestGetCmd(g),
		decideCmd(g, "approve"), decideCmd(g, "deny"), decideCmd(g, "revoke"))
	return c
}

func requestCreateCmd(g *globals) *cobra.Command {
	var (
		tf                targetFlags
		reason, duration  string
		start             string
		quiet, breakGlass bool
		namespace, name   string
		constraints       []string
	)
	c := &cobra.Command{
		Use:     "create (--task T | --role R | --role-group G) --reason TEXT [--duration 4h] [--start TIME] [--namespace NS] [--name NAME] [--constraint KEY=VALUE]",
		Aliases: []string{"new"},
		Short:   "Request a time-bound grant",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, target, err := tf.scopeTarget()
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason: required")
			}
			body := api.NewRequestBody{Scope: scope, Target: target, Reason: reason, Duration: duration, BreakGlass: breakGlass}
			if body.Constraint, err = constraintFlags(namespace, name, constraints); err != nil {
				return err
			}
			if duration != "" {
				if d, err := time.ParseDuration(duration); err != nil || d <= 0 {
					return usageError("--duration: %q is not a positive duration such as 30m or 4h", duration)
				}
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return usageError("--start: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", start)
				}
				body.StartAt = t
			}
			r, err := fetch[grants.Request](cmd, g, "POST", "/v1/requests", body)
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(cmd.OutOrStdout(), r.ID)
				return nil
			}
			return show(cmd, g, r, requestTable)
		},
	}
	tf.add(c, g)
	c.Flags().StringVar(&reason, "reason", "", "why you need it (required)")
	c.Flags().StringVar(&duration, "duration", "", "how long the grant lasts once approved (default 4h)")
	c.Flags().StringVar(&start, "start", "", "when the grant starts (RFC 3339); default: at approval")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the request id")
	c.Flags().StringVar(&namespace, "namespace", "", "narrow the grant to one namespace (Kubernetes); same as --constraint namespace=NS")
	c.Flags().StringVar(&name, "name", "", "narrow the grant to one object name (Kubernetes); same as --constraint name=NAME")
	c.Flags().StringArrayVar(&constraints, "constraint", nil, "narrow the grant to calls whose attribute KEY is VALUE (repeatable)")
	c.Flags().BoolVar(&breakGlass, "break-glass", false, "emergency access for the break-glass group: effective at once, every approver told, marked for review")
	return c
}

// requestList is the side API's answer to GET /v1/requests.
type requestList struct {
	Requests []grants.Request `json:"requests"`
}

func requestListCmd(g *globals) *cobra.Command {
	var status, requester, target string
	var mine, onlyBreakGlass bool
	c := &cobra.Command{
		Use:   "list [--status pending|approved|denied|expired|revoked|used_up] [--mine]",
		Short: "List access requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if mine {
				q.Set("mine", "true")
			}
			if onlyBreakGlass {
				q.Set("break_glass", "true")
			}
			if requester != "" {
				q.Set("requester", requester)
			}
			if target != "" {
				q.Set("target", target)
			}
			return call(cmd, g, "GET", "/v1/requests?"+q.Encode(), nil, requestListTable)
		},
	}
	c.Flags().StringVar(&status, "status", "", "only requests in this status: pending, approved, denied, expired, revoked or used_up")
	c.Flags().BoolVar(&mine, "mine", false, "only my requests")
	c.Flags().BoolVar(&onlyBreakGlass, "break-glass", false, "only break-glass requests (for review)")
	c.Flags().StringVar(&requester, "requester", "", "only requests of this requester")
	c.Flags().StringVar(&target, "target", "", "only requests for this task, role or role group")
	return c
}

func requestGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one access request",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRequestIDs(g, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, "GET", "/v1/requests/"+url.PathEscape(args[0]), nil, requestTable)
		},
	}
}

// decideCmd is approve, deny or revoke: action is the verb and the path's
// last segment.
func decideCmd(g *globals, action string) *cobra.Command {
	var comment string
	c := &cobra.Command{
		Use:   action + " ID [--comment TEXT]",
		Short: strings.ToUpper(action[:1]) + action[1:] + " an access request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/requests/" + url.PathEscape(args[0]) + "/" + action
			return call(cmd, g, "POST", path, api.DecisionBody{Comment: comment}, requestTable)
		},
	}
	c.Flags().StringVar(&comment, "comment", "", "a comment kept with the decision")
	// Approve and deny decide pending requests; revoke ends approved ones.
	status := grants.StatusPending
	if action == "revoke" {
		status = grants.StatusApproved
	}
	c.ValidArgsFunction = completeRequestIDs(g, status)
	return c
}

// constraintFlags turns --namespace, --name and --constraint KEY=VALUE
// into a request's constraint; nil when none is given.
func constraintFlags(namespace, name string, pairs []string) (map[string]string, error) {
	out := map[string]string{}
	set := func(flag, k, v string) error {
		if v == "" {
			return usageError("%s: the value must not be empty", flag)
		}
		if old, ok := out[k]; ok && old != v {
			return usageError("%s: %s is given twice (%q and %q)", flag, k, old, v)
		}
		out[k] = v
		return nil
	}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError("--constraint: %q is not KEY=VALUE", p)
		}
		if err := set("--constraint", k, v); err != nil {
			return nil, err
		}
	}
	if namespace != "" {
		if err := set("--namespace", "namespace", namespace); err != nil {
			return nil, err
		}
	}
	if name != "" {
		if err := set("--name", "name", name); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// constraintText is a constraint as a table shows it.
func constraintText(c grants.Constraint) string {
	if len(c) == 0 {
		return "none (every call of the target)"
	}
	return c.String()
}

// requestTable shows one request, its grant's window and its decisions.
func requestTable(w io.Writer, r grants.Request) error {
	var approvals []string
	for _, a := range r.Approvals {
		approvals = append(approvals, a.By)
	}
	kv := [][2]string{
		{"id", r.ID}, {"status", string(r.Status)}, {"requester", r.Requester},
		{"target", string(r.Scope) + " " + r.Target}, {"constraint", constraintText(r.Constraint)}, {"reason", r.Reason},
		{"duration", time.Duration(r.Duration).String()}, {"approvers", r.Approvers}, {"approvals", fmt.Sprintf("%d/%d %s", len(r.Approvals), r.ApprovalsRequired, strings.Join(approvals, ","))},
		{"created", ts(r.CreatedAt)}, {"expires", ts(r.ExpiresAt)},
	}
	switch {
	case r.GrantStart != nil:
		kv = append(kv, [2]string{"grant starts", ts(*r.GrantStart)})
	case r.StartAt != nil:
		kv = append(kv, [2]string{"grant starts", ts(*r.StartAt) + " (as asked, once approved)"})
	case r.Status == grants.StatusPending:
		kv = append(kv, [2]string{"grant starts", "at approval"})
	}
	if r.GrantEnd != nil {
		kv = append(kv, [2]string{"grant ends", ts(*r.GrantEnd)})
	}
	if r.MaxUses > 0 {
		kv = append(kv, [2]string{"uses", fmt.Sprintf("%d of %d, %d left", r.Uses, r.MaxUses, r.UsesLeft())})
	}
	if r.Denial != nil {
		kv = append(kv, [2]string{"denied by", r.Denial.By + " " + r.Denial.Comment})
	}
	if r.Revocation != nil {
		kv = append(kv, [2]string{"revoked by", r.Revocation.By + " " + r.Revocation.Comment})
	}
	return fields(w, kv)
}

// requestListTable shows requests one a row.
func requestListTable(w io.Writer, l requestList) error {
	rows := [][]string{}
	for _, r := range l.Requests {
		target := string(r.Scope) + " " + r.Target
		if len(r.Constraint) > 0 {
			target += " (" + r.Constraint.String() + ")"
		}
		rows = append(rows, []string{r.ID, string(r.Status), r.Requester, target,
			time.Duration(r.Duration).String(), fmt.Sprintf("%d/%d", len(r.Approvals), r.ApprovalsRequired), ts(r.CreatedAt), r.Reason})
	}
	return table(w, []string{"ID", "STATUS", "REQUESTER", "TARGET", "DURATION", "APPROVALS", "CREATED", "REASON"}, rows)
}
