package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
			tok, err := mintDevToken(dataDir, identity.DevToken{Subject: sub, Groups: groups, MFA: mfa, Email: email, TTL: ttl, Now: time.Now()})
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

// mintDevToken signs t with the dev issuer of serve --dev whose data
// directory is dataDir.
func mintDevToken(dataDir string, t identity.DevToken) (string, error) {
	dev, err := identity.LoadDevIssuer(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%v; or give the data directory of serve --dev with --data-dir or ELEVATE_DATA_DIR", err)
	}
	if err != nil {
		return "", err
	}
	return dev.Sign(t)
}
