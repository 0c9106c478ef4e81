package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
)

func tokenCmd() *cobra.Command {
	var (
		sub, email, dataDir string
		groups              []string
		mfa                 bool
		ttl                 time.Duration
	)
	c := &cobra.Command{
		Use:   "token --sub NAME [--groups a,b] [--mfa] [--ttl 1h]",
		Short: "Mint a token with the dev issuer (serve --dev only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(sub) == "" {
				return usageError("--sub: required")
			}
			if ttl <= 0 || ttl > 24*time.Hour {
				return usageError("--ttl: must be between 1s and 24h")
			}
			dev, err := identity.LoadDevIssuer(dataDir)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%v; or give the data directory of serve --dev with --data-dir or ELEVATE_DATA_DIR", err)
			}
			if err != nil {
				return err
			}
			tok, err := dev.Sign(identity.DevToken{Subject: sub, Groups: groups, MFA: mfa, Email: email, TTL: ttl, Now: time.Now()})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	c.Flags().StringVar(&sub, "sub", "", "subject (user name)")
	c.Flags().StringSliceVar(&groups, "groups", nil, "groups, comma-separated")
	c.Flags().BoolVar(&mfa, "mfa", false, "mark the token as MFA-authenticated (amr contains mfa)")
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	c.Flags().StringVar(&email, "email", "", "e-mail address claim")
	dataDirFlag(c, &dataDir, "data directory of serve --dev")
	return c
}

func whoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token says you are",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			var w api.Whoami
			if err := c.do(cmd.Context(), "GET", "/v1/whoami", nil, &w); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), w)
			}
			return fields(cmd.OutOrStdout(), [][2]string{
				{"subject", w.Subject}, {"groups", strings.Join(w.Groups, ",")}, {"mfa", strconv.FormatBool(w.MFA)},
				{"email", w.Email}, {"issuer", w.Issuer}, {"expires", ts(w.ExpiresAt)},
				{"admin", strconv.FormatBool(w.Admin)}, {"auditor", strconv.FormatBool(w.Auditor)},
			})
		},
	}
}

func checkCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check METHOD URL",
		Short: "Would this call pass for me, and why (exit 0 if it would, 1 if not)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			var res api.CheckResult
			if err := c.do(cmd.Context(), "POST", "/v1/check", api.CheckRequest{Method: args[0], URL: args[1]}, &res); err != nil {
				return err
			}
			if g.output == "json" {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				verdict := "refused"
				if res.Allowed {
					verdict = "allowed"
				}
				if err := fields(cmd.OutOrStdout(), [][2]string{
					{"verdict", verdict}, {"status", strconv.Itoa(res.Status)}, {"task", res.Task},
					{"gated", strconv.FormatBool(res.Gated)}, {"reason", res.Reason}, {"grant", res.GrantID},
					{"request", res.RequestID}, {"upstream", res.Upstream}, {"path", res.Path}, {"to request", res.RequestCommand},
				}); err != nil {
					return err
				}
			}
			if !res.Allowed {
				return exitError{code: 1, msg: "the call would be refused: " + res.Reason}
			}
			return nil
		},
	}
}

// targetFlags are --task, --role and --role-group; exactly one is required.
type targetFlags struct{ task, role, roleGroup string }

func (t *targetFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&t.task, "task", "", `task, e.g. 'Exchange\New-MoveRequest'`)
	c.Flags().StringVar(&t.role, "role", "", "role")
	c.Flags().StringVar(&t.roleGroup, "role-group", "", "role group")
}

func (t *targetFlags) scopeTarget() (string, string, error) {
	n := 0
	var scope, target string
	for _, p := range []struct{ s, v string }{{"task", t.task}, {"role", t.role}, {"rolegroup", t.roleGroup}} {
		if p.v != "" {
			n++
			scope, target = p.s, p.v
		}
	}
	if n != 1 {
		return "", "", usageError("give exactly one of --task, --role, --role-group")
	}
	return scope, target, nil
}

func requestCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "request", Short: "Ask for, decide and list access requests"}

	var (
		tf                targetFlags
		reason, duration  string
		start             string
		quiet, breakGlass bool
	)
	newC := &cobra.Command{
		Use:   "new (--task T | --role R | --role-group G) --reason TEXT [--duration 4h] [--start TIME]",
		Short: "Request a time-bound grant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, target, err := tf.scopeTarget()
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason: required")
			}
			body := api.NewRequestBody{Scope: scope, Target: target, Reason: reason, Duration: duration, BreakGlass: breakGlass}
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
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var r grants.Request
			if err := cl.do(cmd.Context(), "POST", "/v1/requests", body, &r); err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(cmd.OutOrStdout(), r.ID)
				return nil
			}
			return showRequest(cmd, g, r)
		},
	}
	tf.add(newC)
	newC.Flags().StringVar(&reason, "reason", "", "why you need it (required)")
	newC.Flags().StringVar(&duration, "duration", "", "how long the grant lasts once approved (default 4h)")
	newC.Flags().StringVar(&start, "start", "", "when the grant starts (RFC 3339); default: at approval")
	newC.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the request id")
	newC.Flags().BoolVar(&breakGlass, "break-glass", false, "emergency access for the break-glass group: effective at once, every approver told, marked for review")

	var status, requester, target string
	var mine, onlyBreakGlass bool
	listC := &cobra.Command{
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
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var out struct {
				Requests []grants.Request `json:"requests"`
			}
			if err := cl.do(cmd.Context(), "GET", "/v1/requests?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			rows := [][]string{}
			for _, r := range out.Requests {
				rows = append(rows, []string{r.ID, string(r.Status), r.Requester, string(r.Scope) + " " + r.Target,
					time.Duration(r.Duration).String(), fmt.Sprintf("%d/%d", len(r.Approvals), r.ApprovalsRequired), ts(r.CreatedAt), r.Reason})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "STATUS", "REQUESTER", "TARGET", "DURATION", "APPROVALS", "CREATED", "REASON"}, rows)
		},
	}
	listC.Flags().StringVar(&status, "status", "", "only requests in this status: pending, approved, denied, expired, revoked or used_up")
	listC.Flags().BoolVar(&mine, "mine", false, "only my requests")
	listC.Flags().BoolVar(&onlyBreakGlass, "break-glass", false, "only break-glass requests (for review)")
	listC.Flags().StringVar(&requester, "requester", "", "only requests of this requester")
	listC.Flags().StringVar(&target, "target", "", "only requests for this task, role or role group")

	getC := &cobra.Command{
		Use:   "get ID",
		Short: "Show one access request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var r grants.Request
			if err := cl.do(cmd.Context(), "GET", "/v1/requests/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			return showRequest(cmd, g, r)
		},
	}
	c.AddCommand(newC, listC, getC, decideCmd(g, "approve"), decideCmd(g, "deny"), decideCmd(g, "revoke"))
	return c
}

func decideCmd(g *globals, action string) *cobra.Command {
	var comment string
	c := &cobra.Command{
		Use:   action + " ID [--comment TEXT]",
		Short: strings.ToUpper(action[:1]) + action[1:] + " an access request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var r grants.Request
			if err := cl.do(cmd.Context(), "POST", "/v1/requests/"+url.PathEscape(args[0])+"/"+action, api.DecisionBody{Comment: comment}, &r); err != nil {
				return err
			}
			return showRequest(cmd, g, r)
		},
	}
	c.Flags().StringVar(&comment, "comment", "", "a comment kept with the decision")
	return c
}

func showRequest(cmd *cobra.Command, g *globals, r grants.Request) error {
	if g.output == "json" {
		return printJSON(cmd.OutOrStdout(), r)
	}
	var approvals []string
	for _, a := range r.Approvals {
		approvals = append(approvals, a.By)
	}
	kv := [][2]string{
		{"id", r.ID}, {"status", string(r.Status)}, {"requester", r.Requester},
		{"target", string(r.Scope) + " " + r.Target}, {"reason", r.Reason}, {"duration", time.Duration(r.Duration).String()},
		{"approvers", r.Approvers}, {"approvals", fmt.Sprintf("%d/%d %s", len(r.Approvals), r.ApprovalsRequired, strings.Join(approvals, ","))},
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
	return fields(cmd.OutOrStdout(), kv)
}

func policyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Manage approval policies (admins)"}
	var (
		tf                                              targetFlags
		approval, approvers, maxDuration, reasonPattern string
		approvals, minReason, maxUses                   int
		requireMFA, requesterMFA                        bool
	)
	newC := &cobra.Command{
		Use:   "new (--task T | --role R | --role-group G) --approval manual|auto [--approvers GROUP] [--approvals N] [--max-duration D] [--require-mfa]",
		Short: "Gate a task, role or role group behind approval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, target, err := tf.scopeTarget()
			if err != nil {
				return err
			}
			if approval != "manual" && approval != "auto" {
				return usageError("--approval: must be manual or auto")
			}
			// Left out, the server's default (1); given, at least 1.
			var nApprovals *int
			if cmd.Flags().Changed("approvals") {
				if approvals < 1 {
					return usageError("--approvals: must be at least 1")
				}
				nApprovals = &approvals
			}
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var p grants.Policy
			body := api.PolicyBody{Scope: scope, Target: target, Approval: approval, Approvers: approvers,
				Approvals: nApprovals, MaxDuration: maxDuration, RequireMFA: requireMFA, RequireRequesterMFA: requesterMFA,
				MinReasonLength: minReason, ReasonPattern: reasonPattern, MaxUses: maxUses}
			if err := cl.do(cmd.Context(), "POST", "/v1/policies", body, &p); err != nil {
				return err
			}
			return showPolicy(cmd, g, p)
		},
	}
	tf.add(newC)
	newC.Flags().StringVar(&approval, "approval", "", "manual or auto (required)")
	newC.Flags().StringVar(&approvers, "approvers", "", "approver group (default: the org default)")
	newC.Flags().IntVar(&approvals, "approvals", 0, "distinct approvers required (default 1)")
	newC.Flags().StringVar(&maxDuration, "max-duration", "", "longest grant this policy allows")
	newC.Flags().BoolVar(&requireMFA, "require-mfa", false, "approvers must have signed in with MFA")
	newC.Flags().BoolVar(&requesterMFA, "require-requester-mfa", false, "requesters must have signed in with MFA")
	newC.Flags().IntVar(&minReason, "min-reason-length", 0, "shortest acceptable reason")
	newC.Flags().StringVar(&reasonPattern, "reason-pattern", "", "regular expression the reason must match, e.g. a ticket '^CHG-[0-9]+'")
	newC.Flags().IntVar(&maxUses, "max-uses", 0, "calls a grant allows before it ends (0: unlimited)")

	listC := &cobra.Command{
		Use: "list", Short: "List approval policies", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var out struct {
				Policies []grants.Policy `json:"policies"`
			}
			if err := cl.do(cmd.Context(), "GET", "/v1/policies", nil, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			return listPolicies(cmd, out.Policies)
		},
	}
	// byID sends method to one policy and shows the policy answered.
	byID := func(method string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var p grants.Policy
			if err := cl.do(cmd.Context(), method, "/v1/policies/"+url.PathEscape(args[0]), nil, &p); err != nil {
				return err
			}
			return showPolicy(cmd, g, p)
		}
	}
	getC := &cobra.Command{Use: "get ID", Short: "Show one approval policy", Args: cobra.ExactArgs(1), RunE: byID("GET")}
	rmC := &cobra.Command{Use: "rm ID", Short: "Remove an approval policy", Args: cobra.ExactArgs(1), RunE: byID("DELETE")}
	c.AddCommand(newC, listC, getC, rmC)
	return c
}

// showPolicy shows one policy with every rule it sets.
func showPolicy(cmd *cobra.Command, g *globals, p grants.Policy) error {
	if g.output == "json" {
		return printJSON(cmd.OutOrStdout(), p)
	}
	maxUses := "unlimited"
	if p.MaxUses > 0 {
		maxUses = strconv.Itoa(p.MaxUses)
	}
	return fields(cmd.OutOrStdout(), [][2]string{
		{"id", p.ID}, {"target", string(p.Scope) + " " + p.Target}, {"approval", p.Approval},
		{"approvers", policyApprovers(p)}, {"approvals", strconv.Itoa(p.Approvals)},
		{"max duration", policyMaxDuration(p)}, {"max uses", maxUses},
		{"min reason length", strconv.Itoa(p.MinReasonLength)}, {"reason pattern", p.ReasonPattern},
		{"approver mfa", strconv.FormatBool(p.RequireMFA)}, {"requester mfa", strconv.FormatBool(p.RequireRequesterMFA)},
		{"created by", p.CreatedBy}, {"created", ts(p.CreatedAt)},
	})
}

// listPolicies shows policies one a row.
func listPolicies(cmd *cobra.Command, ps []grants.Policy) error {
	rows := [][]string{}
	for _, p := range ps {
		maxUses := "-"
		if p.MaxUses > 0 {
			maxUses = strconv.Itoa(p.MaxUses)
		}
		var mfa []string
		if p.RequireMFA {
			mfa = append(mfa, "approvers")
		}
		if p.RequireRequesterMFA {
			mfa = append(mfa, "requester")
		}
		var reason []string
		if p.MinReasonLength > 0 {
			reason = append(reason, fmt.Sprintf("min %d chars", p.MinReasonLength))
		}
		if p.ReasonPattern != "" {
			reason = append(reason, "matches "+p.ReasonPattern)
		}
		rows = append(rows, []string{p.ID, string(p.Scope), p.Target, p.Approval, policyApprovers(p), strconv.Itoa(p.Approvals),
			orDash(policyMaxDuration(p)), maxUses, orDash(strings.Join(mfa, ",")), orDash(strings.Join(reason, ", "))})
	}
	return table(cmd.OutOrStdout(), []string{"ID", "SCOPE", "TARGET", "APPROVAL", "APPROVERS", "APPROVALS", "MAX DURATION", "MAX USES", "MFA", "REASON"}, rows)
}

func policyApprovers(p grants.Policy) string {
	if p.Approvers == "" {
		return "(org default)"
	}
	return p.Approvers
}

func policyMaxDuration(p grants.Policy) string {
	if p.MaxDuration > 0 {
		return time.Duration(p.MaxDuration).String()
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func controlCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "control", Short: "Show or change access control settings"}
	show := func(cmd *cobra.Command, v api.ControlView) error {
		if g.output == "json" {
			return printJSON(cmd.OutOrStdout(), v)
		}
		return fields(cmd.OutOrStdout(), [][2]string{
			{"enabled", strconv.FormatBool(v.Enabled)}, {"default approvers", v.DefaultApprovers},
			{"system accounts", strings.Join(v.SystemAccounts, ",")},
		})
	}
	patch := func(cmd *cobra.Command, body api.ControlBody) error {
		cl, err := newClient(g)
		if err != nil {
			return err
		}
		var v api.ControlView
		if err := cl.do(cmd.Context(), "PATCH", "/v1/control", body, &v); err != nil {
			return err
		}
		return show(cmd, v)
	}
	showC := &cobra.Command{
		Use: "show", Short: "Show access control settings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var v api.ControlView
			if err := cl.do(cmd.Context(), "GET", "/v1/control", nil, &v); err != nil {
				return err
			}
			return show(cmd, v)
		},
	}
	var approvers string
	var systemAccounts []string
	enableC := &cobra.Command{
		Use:   "enable [--approvers GROUP] [--system-accounts a,b]",
		Short: "Enable access control; other settings change only if given",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			on := true
			body := api.ControlBody{Enabled: &on}
			if cmd.Flags().Changed("approvers") {
				body.DefaultApprovers = &approvers
			}
			if cmd.Flags().Changed("system-accounts") {
				body.SystemAccounts = &systemAccounts
			}
			return patch(cmd, body)
		},
	}
	enableC.Flags().StringVar(&approvers, "approvers", "", "default approver group")
	enableC.Flags().StringSliceVar(&systemAccounts, "system-accounts", nil, "accounts exempt from approval, comma-separated")
	disableC := &cobra.Command{
		Use: "disable", Short: "Disable access control (policies and requests are kept)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			off := false
			return patch(cmd, api.ControlBody{Enabled: &off})
		},
	}
	c.AddCommand(showC, enableC, disableC)
	return c
}

func auditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Query and verify the audit log"}
	var subject, task, decision, request, trace, since, until, cursor string
	var limit int
	var all bool
	queryC := &cobra.Command{
		Use:   "query [--subject S] [--task T] [--decision D] [--request ID] [--trace ID] [--since T] [--until T] [--limit N] [--cursor C | --all]",
		Short: "Query audit records (auditors see all, others their own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if all && cursor != "" {
				return usageError("--all and --cursor: give one or the other")
			}
			for k, v := range map[string]string{"subject": subject, "task": task, "decision": decision, "request": request, "trace": trace} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for k, v := range map[string]string{"since": since, "until": until} {
				if v == "" {
					continue
				}
				t, err := parseWhen(v)
				if err != nil {
					return usageError("--%s: %v", k, err)
				}
				q.Set(k, t.UTC().Format(time.RFC3339))
			}
			switch {
			case limit > 0:
				q.Set("limit", strconv.Itoa(limit))
			case all:
				q.Set("limit", "1000") // the fewest calls
			}
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			out := newRecordsOut(cmd, g.output == "json")
			for {
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var p struct {
					Records []audit.Record `json:"records"`
					Next    string         `json:"next"`
				}
				if err := cl.do(cmd.Context(), "GET", "/v1/audit?"+q.Encode(), nil, &p); err != nil {
					return out.abort(err, cursor)
				}
				if err := out.page(p.Records); err != nil {
					return err
				}
				if !all || p.Next == "" {
					cursor = p.Next
					break
				}
				cursor = p.Next
			}
			if err := out.end(cursor); err != nil {
				return err
			}
			if cursor != "" && !out.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "more records: --cursor %s (or --all)\n", cursor)
			}
			return nil
		},
	}
	queryC.Flags().StringVar(&subject, "subject", "", "only records of this subject")
	queryC.Flags().StringVar(&task, "task", "", "only records of this task")
	queryC.Flags().StringVar(&decision, "decision", "", "only this event (allowed, denied, grant_required, unauthenticated, request.approved, ...)")
	queryC.Flags().StringVar(&request, "request", "", "only records of this access request")
	queryC.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, or a duration ago such as 1h)")
	queryC.Flags().StringVar(&until, "until", "", "up to this time (RFC 3339, or a duration ago)")
	queryC.Flags().StringVar(&trace, "trace", "", "only records of this trace id")
	queryC.Flags().IntVar(&limit, "limit", 0, "records per page, 1 to 1000 (default 100)")
	queryC.Flags().StringVar(&cursor, "cursor", "", "the page after this cursor (printed after a full page)")
	queryC.Flags().BoolVar(&all, "all", false, "follow every page, printing each as it arrives")

	var dataDir string
	verifyC := &cobra.Command{
		Use:   "verify [FILE...]",
		Short: "Check the hash chain of an audit log (default DATA_DIR/audit.log and its rotated files)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			files := args
			if len(files) == 0 {
				if _, err := os.Stat(dataDir); errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("no data directory %s to find audit.log in: run this where elevate serve --dev runs, "+
						"give its data directory with --data-dir or ELEVATE_DATA_DIR, or name the log: elevate audit verify FILE", dataDir)
				}
				// One path: Verify reads its whole rotated set, oldest first,
				// and names a missing file.
				files = []string{filepath.Join(dataDir, "audit.log")}
			}
			rep, err := audit.Verify(files...)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d records in %d file(s), chain intact, last hash %s\n", rep.Records, rep.Files, rep.LastHash)
			return nil
		},
	}
	dataDirFlag(verifyC, &dataDir, "data directory whose audit.log to verify when no FILE is given")
	c.AddCommand(queryC, verifyC)
	return c
}

func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", v)
}

func statusText(s int) string {
	if s == 0 {
		return ""
	}
	return strconv.Itoa(s)
}

// dataDirFlag adds --data-dir, default ./.elevate or ELEVATE_DATA_DIR.
func dataDirFlag(c *cobra.Command, dir *string, usage string) {
	c.Flags().StringVar(dir, "data-dir", ".elevate", usage)
	envFlag(c.Flags(), "data-dir", "ELEVATE_DATA_DIR")
}

// recordsOut prints audit records page by page as they arrive: table rows,
// or JSON of the shape of one page, {"records": [...], "next": "..."},
// written a record at a time. Nothing printed is taken back: when a page
// fails, the JSON is closed with the cursor to go on from.
type recordsOut struct {
	w     io.Writer
	json  bool
	n     int // records printed
	pages int
}

func newRecordsOut(cmd *cobra.Command, asJSON bool) *recordsOut {
	return &recordsOut{w: cmd.OutOrStdout(), json: asJSON}
}

func (o *recordsOut) page(recs []audit.Record) error {
	o.pages++
	if o.json {
		for _, r := range recs {
			b, err := marshalIndent(r, "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n    "
			if o.n == 0 {
				sep = "{\n  \"records\": [\n    "
			}
			if _, err := fmt.Fprintf(o.w, "%s%s", sep, b); err != nil {
				return err
			}
			o.n++
		}
		return nil
	}
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		rows = append(rows, []string{ts(r.Time), r.Event, r.Subject, r.Task, r.Method + " " + r.Path, statusText(r.Status), r.RequestID, r.TraceID})
	}
	var header []string
	if o.pages == 1 {
		header = []string{"TIME", "EVENT", "SUBJECT", "TASK", "CALL", "STATUS", "REQUEST", "TRACE"}
	}
	o.n += len(recs)
	return table(o.w, header, rows)
}

// end closes the output; next is the cursor of the page after the last.
func (o *recordsOut) end(next string) error {
	if !o.json {
		return nil
	}
	nb, err := marshalJSON(next)
	if err != nil {
		return err
	}
	open := "{\n  \"records\": []"
	if o.n > 0 {
		open = "\n  ]"
	}
	_, err = fmt.Fprintf(o.w, "%s,\n  \"next\": %s\n}\n", open, nb)
	return err
}

// abort ends the output after err failed the page at cursor, and returns
// err with the way to go on, keeping its exit status.
func (o *recordsOut) abort(err error, cursor string) error {
	if o.pages == 0 {
		return err
	}
	if e := o.end(cursor); e != nil {
		return e
	}
	code, msg := exitFailed, err.Error()
	var ee exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.msg
	}
	return exitError{code: code, msg: fmt.Sprintf("%s; %d records printed; go on with --cursor %s", msg, o.n, cursor)}
}
