// Command elevate is a proxy that puts approvals in front of admin APIs, and
// the client that asks for, decides and inspects those approvals.
//
//	elevate serve --dev                 run with embedded etcd and a demo upstream
//	elevate token --sub NAME            mint a dev token
//	elevate request create --task T ... ask for a time-bound grant
//
// Run `elevate help` for every command. The exit status says what happened:
// 0 done, 1 refused or failed as asked, 2 a usage mistake, 3 the server
// could not be reached or did not accept the token (see exitHelp).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Exit statuses.
const (
	exitFailed   = 1 // refused, or failed as asked
	exitUsage    = 2 // the command line is wrong
	exitNoServer = 3 // cannot reach or authenticate to the server
)

// exitHelp is the part of `elevate --help` that scripts rely on.
const exitHelp = `Exit status:
  0  done (check: the call would pass)
  1  refused or failed as asked: the server said no (4xx, 5xx), check says the
     call would be refused, a file or the data directory is missing or bad
  2  usage: unknown command, wrong arguments, bad or missing flag values
  3  cannot reach or authenticate to the server: no connection, TLS failure,
     or 401 (no token, a refused token, an expired token)
Every failure prints one line on stderr.

Environment (read after the command line, which wins; never shown by --help):
  ELEVATE_SERVER    --server
  ELEVATE_TOKEN     --token
  ELEVATE_CA_FILE   --ca-file
  ELEVATE_DATA_DIR  --data-dir (serve: after the config file's data_dir)`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command line and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code, msg := exitFailed, err.Error()
	var ee exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.msg
	}
	if msg != "" {
		fmt.Fprintln(stderr, "elevate: "+oneLine(msg))
	}
	return code
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// usageError is a mistake in the command line: exit status 2.
func usageError(format string, a ...any) error {
	return exitError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "elevate",
		Short:         "Approvals in front of admin APIs: zero standing access",
		Long:          "Approvals in front of admin APIs: zero standing access.\n\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd); err != nil {
				return err
			}
			if g.output != "table" && g.output != "json" {
				return usageError("-o: must be table or json, not %q", g.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "http://127.0.0.1:8081", "control listener URL")
	pf.StringVar(&g.token, "token", "", "bearer token")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM certificates that an https:// --server must chain to, instead of the system's")
	envFlag(pf, "server", "ELEVATE_SERVER")
	envFlag(pf, "token", "ELEVATE_TOKEN")
	envFlag(pf, "ca-file", "ELEVATE_CA_FILE")
	root.AddCommand(serveCmd(), tokenCmd(), whoamiCmd(g), checkCmd(g), requestCmd(g), policyCmd(g), taskCmd(g), controlCmd(g), auditCmd(g), caCmd(g), connectCmd(g), kubeconfigCmd(g), credentialCmd(g), catalogCmd(), demoUpstreamCmd())
	root.SetHelpCommand(helpCmd(root))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// A group given an unknown flag after an unknown command: the
		// command is the mistake to report.
		if c.HasSubCommands() && c.Flags().NArg() > 0 {
			return unknownCommand(c, c.Flags().Arg(0))
		}
		return usageError("%s%v", where(c), err)
	})
	strictArgs(root)
	return root
}

// strictArgs makes argument mistakes usage errors (exit 2) across the tree.
// A group (a command with subcommands) runs nothing itself: given no
// command, or one it does not know, it says so instead of printing help
// and succeeding.
func strictArgs(c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("%sa command is required: %s (see %s --help)", where(cmd), subcommandNames(cmd), cmd.CommandPath())
			}
			return unknownCommand(cmd, args[0])
		}
		for _, sub := range c.Commands() {
			strictArgs(sub)
		}
		return
	}
	check := c.Args
	if check == nil {
		check = cobra.NoArgs
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError("%s%v; usage: %s", where(cmd), err, cmd.UseLine())
		}
		return nil
	}
}

// where prefixes a usage error with the command it is about; run already
// says "elevate: ".
func where(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return c.CommandPath() + ": "
}

// unknownCommand is the usage error for a command name c does not have,
// with the names it may have meant.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default
	}
	if s := c.SuggestionsFor(name); len(s) > 0 {
		return usageError("%s; did you mean %q?", msg, s[0])
	}
	return usageError("%s; its commands: %s", msg, subcommandNames(c))
}

func subcommandNames(c *cobra.Command) string {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return strings.Join(names, ", ")
}

// helpCmd is `elevate help [command]`; an unknown command is a usage error,
// as it is without help.
func helpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil {
				return usageError("%v", err)
			}
			if len(rest) > 0 {
				return unknownCommand(c, rest[0])
			}
			c.SetOut(cmd.OutOrStdout())
			return c.Help()
		},
	}
}
