package identity_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/elevate-pam/elevate/proxy/identity"
)

// A verifier that trusts the dev issuer checks a token the dev issuer signed,
// and refuses the same token once it has expired, with a Refusal that may be
// shown to the caller.
func Example() {
	dir, err := os.MkdirTemp("", "elevate-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	dev, err := identity.LoadOrCreateDevIssuer(dir)
	if err != nil {
		panic(err)
	}
	now := time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)
	clock := now
	v, err := identity.New(context.Background(), identity.Config{
		Issuers: []identity.Issuer{dev.Issuer()},
		Now:     func() time.Time { return clock },
	})
	if err != nil {
		panic(err)
	}

	token, err := dev.Sign(identity.DevToken{Subject: "alice", Groups: []string{"admins"}, MFA: true, Now: now})
	if err != nil {
		panic(err)
	}
	id, err := v.Verify(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Subject, id.InGroup("admins"), id.MFA(), id.ExpiresAt)

	clock = now.Add(2 * time.Hour)
	_, err = v.Verify(context.Background(), token)
	fmt.Println(errors.Is(err, identity.ErrUnauthenticated), err)
	var why identity.Refusal // the part that may be shown to the caller
	fmt.Println(errors.As(err, &why), why)

	_, err = v.Verify(context.Background(), "")
	fmt.Println(errors.Is(err, identity.ErrNoToken), err)
	// Output:
	// alice true true 2030-01-02 04:04:05 +0000 UTC
	// true unauthenticated: token expired
	// true token expired
	// true unauthenticated: no token
}
