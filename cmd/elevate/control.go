package main

import (
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/proxy/api"
)

func controlCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "control", Short: "Show or change access control settings"}
	// patch changes the settings body names and shows them all.
	patch := func(cmd *cobra.Command, body api.ControlBody) error {
		return call(cmd, g, "PATCH", "/v1/control", body, controlTable)
	}
	showC := &cobra.Command{
		Use: "show", Short: "Show access control settings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, g, "GET", "/v1/control", nil, controlTable)
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

func controlTable(w io.Writer, v api.ControlView) error {
	return fields(w, [][2]string{
		{"enabled", strconv.FormatBool(v.Enabled)}, {"default approvers", v.DefaultApprovers},
		{"system accounts", strings.Join(v.SystemAccounts, ",")},
	})
}
