package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The flags several commands share.

// targetFlags are --task, --role and --role-group; exactly one is required.
type targetFlags struct{ task, role, roleGroup string }

// add adds the flags to c, completed from the server's task list.
func (t *targetFlags) add(c *cobra.Command, g *globals) {
	c.Flags().StringVar(&t.task, "task", "", `task, e.g. 'Exchange\New-MoveRequest' (elevate task list)`)
	c.Flags().StringVar(&t.role, "role", "", "role")
	c.Flags().StringVar(&t.roleGroup, "role-group", "", "role group")
	for flag, scope := range map[string]string{"task": "task", "role": "role", "role-group": "rolegroup"} {
		_ = c.RegisterFlagCompletionFunc(flag, completeTargets(g, scope))
	}
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

// dataDirFlag adds --data-dir, default ./.elevate or ELEVATE_DATA_DIR.
func dataDirFlag(c *cobra.Command, dir *string, usage string) {
	c.Flags().StringVar(dir, "data-dir", ".elevate", usage)
	envFlag(c.Flags(), "data-dir", "ELEVATE_DATA_DIR")
}

// envAnnotation marks a flag whose value, when the command line does not
// give it, comes from an environment variable.
const envAnnotation = "elevate_env"

// envFlag makes the flag take its value from env when the command line does
// not set it. The variable is read after parsing (flagsFromEnv), never into
// the flag's default: help names the variable and never shows its value,
// which may be a secret (a token).
func envFlag(fs *pflag.FlagSet, name, env string) {
	f := fs.Lookup(name)
	f.Usage += " (env " + env + ")"
	_ = fs.SetAnnotation(name, envAnnotation, []string{env})
}

// flagsFromEnv sets the flags of cmd marked by envFlag that the command
// line left unset from their environment variables.
func flagsFromEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		env := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(env) == 0 {
			return
		}
		if v := os.Getenv(env[0]); v != "" {
			if e := cmd.Flags().Set(f.Name, v); e != nil {
				err = usageError("%s: %v", env[0], e)
			}
		}
	})
	return err
}
