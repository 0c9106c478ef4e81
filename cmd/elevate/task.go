package main

import (
	"context"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy/api"
)

func taskCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "task", Short: "What can be requested: the tasks, roles and role groups of the policy bundle"}
	c.AddCommand(taskListCmd(g))
	return c
}

func taskListCmd(g *globals) *cobra.Command {
	var upstream string
	var bundle []string
	c := &cobra.Command{
		Use:   "list [--upstream U] [--bundle DIR]...",
		Short: "List the tasks, roles and role groups that can be requested",
		Long: `List the tasks, roles and role groups that can be requested: those of the
running server's policy bundle, or, with --bundle, of the embedded bundle with
the directories given layered over it (as policy.dirs does), read here
without a server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(bundle) == 0 {
				path := "/v1/tasks"
				if upstream != "" {
					path += "?" + url.Values{"upstream": {upstream}}.Encode()
				}
				return call(cmd, g, "GET", path, nil, tasksTable)
			}
			cat, err := loadCatalog(cmd.Context(), bundle)
			if err != nil {
				return err
			}
			list := api.TaskList(cat, upstream)
			if upstream != "" && len(list.Tasks) == 0 {
				ups := map[string]bool{}
				for _, t := range cat.Tasks {
					ups[t.Upstream] = true
				}
				msg := "--upstream: no task of upstream " + strconv.Quote(upstream) + " in the bundle"
				if near := policy.Nearest(slices.Collect(maps.Keys(ups)), upstream); near != "" {
					msg += `; did you mean "` + near + `"?`
				}
				return exitError{code: exitFailed, msg: msg}
			}
			return show(cmd, g, list, tasksTable)
		},
	}
	c.Flags().StringVar(&upstream, "upstream", "", "only the tasks of this upstream, and the roles and role groups that cover one")
	c.Flags().StringArrayVar(&bundle, "bundle", nil, "read the embedded bundle with this directory layered over it, instead of asking the server (repeatable)")
	_ = c.RegisterFlagCompletionFunc("upstream", completeUpstreams(g))
	_ = c.MarkFlagDirname("bundle")
	return c
}

// loadCatalog loads the embedded bundle with dirs layered over it, as
// serve would, and returns its catalog. A bundle that does not load is
// exit status 1, its error naming files and lines.
func loadCatalog(ctx context.Context, dirs []string) (policy.Catalog, error) {
	if err := dirsExist("--bundle", dirs); err != nil {
		return policy.Catalog{}, err
	}
	e, err := policy.New(ctx, policy.Config{Bundle: layeredBundle(dirs)})
	if err != nil {
		return policy.Catalog{}, exitError{code: exitFailed, msg: err.Error()}
	}
	return e.Catalog(), nil
}

// tasksTable shows the tasks, then the roles and role groups.
func tasksTable(w io.Writer, l api.Tasks) error {
	rows := [][]string{}
	for _, t := range l.Tasks {
		read := "no"
		if t.Read {
			read = "yes"
		}
		rows = append(rows, []string{t.Name, t.Upstream, read, orDash(t.Description)})
	}
	if err := table(w, []string{"TASK", "UPSTREAM", "READ", "DESCRIPTION"}, rows); err != nil {
		return err
	}
	rows = rows[:0]
	for kind, sets := range map[string][]api.SetEntry{"role": l.Roles, "role group": l.RoleGroups} {
		for _, s := range sets {
			rows = append(rows, []string{s.Name, kind, strings.Join(s.Tasks, ", ")})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[1]+"\x00"+a[0], b[1]+"\x00"+b[0]) })
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return table(w, []string{"ROLE OR GROUP", "KIND", "TASKS"}, rows)
}

// completionTimeout bounds a call that shell completion makes: a server
// that does not answer in time gives no completions.
const completionTimeout = 2 * time.Second

// dirsExist makes a directory of dirs that is not one a usage error of
// flag.
func dirsExist(flag string, dirs []string) error {
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return usageError("%s: %q is not a directory", flag, d)
		}
	}
	return nil
}
