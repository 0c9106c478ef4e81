// Command elevate is a proxy that puts approvals in front of admin APIs, and
// the client that asks for, decides and inspects those approvals.
//
//	elevate serve --dev                 run with embedded etcd and a demo upstream
//	elevate token --sub NAME            mint a dev token
//	elevate request new --task T ...    ask for a time-bound grant
//
// Run `elevate help` for every command.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// globals are the flags every client command shares.
type globals struct {
	server string
	token  string
	output string
	caFile string
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	root := rootCmd()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "elevate: "+oneLine(ee.msg))
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "elevate: "+oneLine(err.Error()))
		return 1
	}
	return 0
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "elevate",
		Short:         "Approvals in front of admin APIs: zero standing access",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("-o: must be table or json, not %q", g.output)
			}
			return nil
		},
	}
	server := os.Getenv("ELEVATE_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8081"
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "control listener URL (env ELEVATE_SERVER)")
	root.PersistentFlags().StringVar(&g.token, "token", os.Getenv("ELEVATE_TOKEN"), "bearer token (env ELEVATE_TOKEN)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&g.caFile, "ca-file", os.Getenv("ELEVATE_CA_FILE"), "PEM certificates that an https:// --server must chain to, instead of the system's (env ELEVATE_CA_FILE)")
	root.AddCommand(serveCmd(), tokenCmd(), whoamiCmd(g), checkCmd(g), requestCmd(g), policyCmd(g), controlCmd(g), auditCmd(g), caCmd(g), connectCmd(g), demoUpstreamCmd())
	return root
}
