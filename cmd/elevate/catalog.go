package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/internal/openapi"
)

func catalogCmd() *cobra.Command {
	c := &cobra.Command{Use: "catalog", Short: "Work with route tables, the catalogs that map calls to tasks"}
	c.AddCommand(catalogImportCmd())
	return c
}

var (
	upstreamName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	scopeName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

func catalogImportCmd() *cobra.Command {
	var upstream, scope, out string
	c := &cobra.Command{
		Use:   "import OPENAPI [--upstream NAME] [--scope PREFIX] [-o FILE]",
		Short: "Draft a route table from an OpenAPI 3 or Swagger 2 document (a file, or - for stdin)",
		Long: `Draft a route table from an OpenAPI 3 or Swagger 2 document (JSON or YAML;
a file, or - for standard input). Each operation becomes one task, named
Scope\Name from its operationId (listUsers: Scope\List-Users), else from its
method and path (DELETE /zones/{zone}: Scope\Delete-Zones-Zone, leaving out
api and version segments that every path starts with); GET and HEAD
operations are reads. Route paths are relative to the upstream's base URL:
the document's server path or basePath is left out.

The draft goes to standard output (or -o FILE); what to review before using
it goes to standard error: POST operations named like reads, GET operations
whose responses hold fields named like secrets, operations without an
operationId, names made unique, routes left out because they overlap.
Nothing is fetched: external $refs are refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if upstream != "" && !upstreamName.MatchString(upstream) {
				return usageError("--upstream: %q is not an upstream name (letters, digits, - and _)", upstream)
			}
			if scope != "" && !scopeName.MatchString(scope) {
				return usageError("--scope: %q is not a task scope (letters, digits, ., - and _; no \\)", scope)
			}
			if out == "table" || out == "json" {
				return usageError("-o: catalog import writes YAML to a file; give its name (./%s for a file named so)", out)
			}
			doc, err := readDocument(cmd, args[0])
			if err != nil {
				return err
			}
			d, err := openapi.Import(doc, openapi.Options{Upstream: upstream, Scope: scope})
			if err != nil {
				if errors.Is(err, openapi.ErrInput) {
					return exitError{code: exitFailed, msg: args[0] + ": " + err.Error()}
				}
				return err
			}
			if out == "" || out == "-" {
				if _, err := cmd.OutOrStdout().Write(d.YAML); err != nil {
					return err
				}
			} else if err := os.WriteFile(out, d.YAML, 0o644); err != nil {
				return exitError{code: exitFailed, msg: fmt.Sprintf("-o: %v", err)}
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "drafted %d tasks for upstream %s", len(d.Tasks), d.Upstream)
			if len(d.Review) == 0 {
				fmt.Fprintln(w, "; nothing to review")
				return nil
			}
			fmt.Fprintf(w, "; review %d:\n", len(d.Review))
			for _, r := range d.Review {
				fmt.Fprintln(w, "  "+r)
			}
			return nil
		},
	}
	c.Flags().StringVar(&upstream, "upstream", "", "the configured upstream name (default: from the document's title)")
	c.Flags().StringVar(&scope, "scope", "", `task scope, as in Scope\Name (default: from the upstream name)`)
	// Shadows the global -o (table|json): this command writes YAML.
	c.Flags().StringVarP(&out, "output", "o", "", "write the draft to FILE instead of standard output")
	return c
}

// readDocument reads path (- for standard input), at most openapi.MaxSize
// bytes and one more to tell that it is too large.
func readDocument(cmd *cobra.Command, path string) ([]byte, error) {
	var r io.Reader = cmd.InOrStdin()
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, exitError{code: exitFailed, msg: err.Error()}
		}
		defer f.Close()
		r = f
	}
	doc, err := io.ReadAll(io.LimitReader(r, openapi.MaxSize+1))
	if err != nil {
		return nil, exitError{code: exitFailed, msg: fmt.Sprintf("%s: %v", path, err)}
	}
	if len(doc) > openapi.MaxSize {
		return nil, exitError{code: exitFailed, msg: fmt.Sprintf("%s: larger than %d MiB, the most an OpenAPI document may be", path, openapi.MaxSize>>20)}
	}
	return doc, nil
}
