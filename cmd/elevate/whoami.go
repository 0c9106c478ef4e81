package main

import (
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/proxy/api"
)

func whoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token says you are",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, g, "GET", "/v1/whoami", nil, whoamiTable)
		},
	}
}

func whoamiTable(w io.Writer, me api.Whoami) error {
	return fields(w, [][2]string{
		{"subject", me.Subject}, {"groups", strings.Join(me.Groups, ",")}, {"mfa", strconv.FormatBool(me.MFA)},
		{"email", me.Email}, {"issuer", me.Issuer}, {"expires", ts(me.ExpiresAt)},
		{"admin", strconv.FormatBool(me.Admin)}, {"auditor", strconv.FormatBool(me.Auditor)},
	})
}
