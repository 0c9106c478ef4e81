package main

import (
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/proxy/api"
)

func checkCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check METHOD URL",
		Short: "Would this call pass for me, and why (exit 0 if it would, 1 if not)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := fetch[api.CheckResult](cmd, g, "POST", "/v1/check", api.CheckRequest{Method: args[0], URL: args[1]})
			if err != nil {
				return err
			}
			if err := show(cmd, g, res, checkTable); err != nil {
				return err
			}
			if !res.Allowed {
				return exitError{code: exitFailed, msg: "the call would be refused: " + res.Reason}
			}
			return nil
		},
	}
}

func checkTable(w io.Writer, res api.CheckResult) error {
	verdict := "refused"
	if res.Allowed {
		verdict = "allowed"
	}
	return fields(w, [][2]string{
		{"verdict", verdict}, {"status", strconv.Itoa(res.Status)}, {"task", res.Task},
		{"gated", strconv.FormatBool(res.Gated)}, {"reason", res.Reason}, {"grant", res.GrantID},
		{"request", res.RequestID}, {"upstream", res.Upstream}, {"path", res.Path}, {"to request", res.RequestCommand},
	})
}
