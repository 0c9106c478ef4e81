package policy_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/elevate-pam/elevate/policy"
)

func ExampleEngine_Eval() {
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Config{Bundle: os.DirFS("../rego")})
	if err != nil {
		panic(err)
	}

	// Access control is on, and the role Mailbox Import Export needs approval.
	err = engine.SetState(ctx, policy.State{
		Control: policy.Control{Enabled: true, DefaultApprovers: "pam-approvers"},
		Policies: []policy.ApprovalPolicy{{
			ID: "p-1", Scope: "role", Target: `Exchange\Mailbox Import Export`, Approval: "manual",
		}},
	})
	if err != nil {
		panic(err)
	}

	now := time.Date(2025, 6, 16, 12, 0, 0, 0, time.UTC)
	search := policy.Input{
		Method:   "POST",
		Upstream: "exchange",
		Host:     "exchange.elevate.test",
		Path:     []string{"mailboxes", "mbx-1", "search"},
		Subject:  policy.Subject{ID: "alice"},
	}
	d, err := engine.Eval(ctx, search, now)
	fmt.Println(d.Outcome, "-", d.Reason, err)

	// Once a grant for the task is approved, the same call goes through.
	search.Grants = []policy.Grant{{
		ID: "g-1", RequestID: "r-1", Scope: "task", Target: `Exchange\Search-Mailbox`,
		NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(4 * time.Hour),
	}}
	d, err = engine.Eval(ctx, search, now)
	fmt.Println(d.Outcome, "-", d.Reason, d.GrantID, err)

	// Output:
	// grant_required - task Exchange\Search-Mailbox requires an approved grant <nil>
	// allow - covered by an approved grant g-1 <nil>
}
