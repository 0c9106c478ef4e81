package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/proxy/api"
)

func policyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Manage approval policies (admins); test and lint the policy bundle"}
	// byID sends method to one policy and shows the policy answered.
	byID := func(method string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, method, "/v1/policies/"+url.PathEscape(args[0]), nil, policyTable)
		}
	}
	c.AddCommand(policyCreateCmd(g),
		&cobra.Command{
			Use: "list", Short: "List approval policies", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return call(cmd, g, "GET", "/v1/policies", nil, policyListTable)
			},
		},
		&cobra.Command{Use: "get ID", Short: "Show one approval policy", Args: cobra.ExactArgs(1), RunE: byID("GET"),
			ValidArgsFunction: completePolicyIDs(g)},
		&cobra.Command{Use: "delete ID", Aliases: []string{"rm"}, Short: "Remove an approval policy", Args: cobra.ExactArgs(1), RunE: byID("DELETE"),
			ValidArgsFunction: completePolicyIDs(g)},
		policyTestCmd(g), policyLintCmd(g),
	)
	return c
}

func policyCreateCmd(g *globals) *cobra.Command {
	var (
		tf                                              targetFlags
		approval, approvers, maxDuration, reasonPattern string
		approvals, minReason, maxUses                   int
		requireMFA, requesterMFA                        bool
		requireConstraint                               []string
	)
	c := &cobra.Command{
		Use:     "create (--task T | --role R | --role-group G) --approval manual|auto [--approvers GROUP] [--approvals N] [--max-duration D] [--require-mfa]",
		Aliases: []string{"new"},
		Short:   "Gate a task, role or role group behind approval",
		Args:    cobra.NoArgs,
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
			body := api.PolicyBody{Scope: scope, Target: target, Approval: approval, Approvers: approvers,
				Approvals: nApprovals, MaxDuration: maxDuration, RequireMFA: requireMFA, RequireRequesterMFA: requesterMFA,
				MinReasonLength: minReason, ReasonPattern: reasonPattern, MaxUses: maxUses, RequireConstraint: requireConstraint}
			return call(cmd, g, "POST", "/v1/policies", body, policyTable)
		},
	}
	tf.add(c, g)
	c.Flags().StringVar(&approval, "approval", "", "manual or auto (required)")
	c.Flags().StringVar(&approvers, "approvers", "", "approver group (default: the org default)")
	c.Flags().IntVar(&approvals, "approvals", 0, "distinct approvers required (default 1)")
	c.Flags().StringVar(&maxDuration, "max-duration", "", "longest grant this policy allows")
	c.Flags().BoolVar(&requireMFA, "require-mfa", false, "approvers must have signed in with MFA")
	c.Flags().BoolVar(&requesterMFA, "require-requester-mfa", false, "requesters must have signed in with MFA")
	c.Flags().IntVar(&minReason, "min-reason-length", 0, "shortest acceptable reason")
	c.Flags().StringVar(&reasonPattern, "reason-pattern", "", "regular expression the reason must match, e.g. a ticket '^CHG-[0-9]+'")
	c.Flags().IntVar(&maxUses, "max-uses", 0, "calls a grant allows before it ends (0: unlimited)")
	c.Flags().StringSliceVar(&requireConstraint, "require-scope", nil, "attributes every request must narrow its grant by, e.g. namespace (Kubernetes: --namespace)")
	c.Flags().StringSliceVar(&requireConstraint, "require-constraint", nil, "same as --require-scope")
	return c
}

// policyTable shows one policy with every rule it sets.
func policyTable(w io.Writer, p grants.Policy) error {
	maxUses := "unlimited"
	if p.MaxUses > 0 {
		maxUses = strconv.Itoa(p.MaxUses)
	}
	return fields(w, [][2]string{
		{"id", p.ID}, {"target", string(p.Scope) + " " + p.Target}, {"approval", p.Approval},
		{"approvers", policyApprovers(p)}, {"approvals", strconv.Itoa(p.Approvals)},
		{"max duration", policyMaxDuration(p)}, {"max uses", maxUses},
		{"min reason length", strconv.Itoa(p.MinReasonLength)}, {"reason pattern", p.ReasonPattern},
		{"approver mfa", strconv.FormatBool(p.RequireMFA)}, {"requester mfa", strconv.FormatBool(p.RequireRequesterMFA)},
		{"required scope", strings.Join(p.RequireConstraint, ", ")},
		{"created by", p.CreatedBy}, {"created", ts(p.CreatedAt)},
	})
}

// policyList is the side API's answer to GET /v1/policies.
type policyList struct {
	Policies []grants.Policy `json:"policies"`
}

// policyListTable shows policies one a row.
func policyListTable(w io.Writer, l policyList) error {
	rows := [][]string{}
	for _, p := range l.Policies {
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
	return table(w, []string{"ID", "SCOPE", "TARGET", "APPROVAL", "APPROVERS", "APPROVALS", "MAX DURATION", "MAX USES", "MFA", "REASON"}, rows)
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
