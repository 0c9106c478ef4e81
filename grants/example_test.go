package grants_test

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/elevate-pam/elevate/grants"
)

// The four set-up steps of Microsoft 365 PAM, then a request approved and
// its grant seen by the proxied path, from memory.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{grants.SharedEtcdEndpoint()}, Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	now := time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)
	store, err := grants.New(grants.Config{
		Client: cli,
		Prefix: "/example/",
		Now:    func() time.Time { return now },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if err := store.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// Approver group, enable, policy.
	_, ctl, err := store.UpdateControl(ctx, grants.ControlPatch{
		Enabled:          new(true),
		DefaultApprovers: new("mailbox-approvers"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("enabled:", ctl.Enabled, "approvers:", ctl.DefaultApprovers)
	policy, err := store.CreatePolicy(ctx, grants.Policy{
		Scope:     grants.ScopeTask,
		Target:    `Exchange\New-MoveRequest`,
		Approval:  grants.ApprovalManual,
		CreatedBy: "admin",
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Request and approval.
	req, err := store.Submit(ctx, grants.NewRequest{
		Requester: grants.Actor{Subject: "alice"},
		Scope:     grants.ScopeTask,
		Target:    `Exchange\New-MoveRequest`,
		Reason:    "move the CEO's mailbox",
		Duration:  time.Hour,
		PolicyID:  policy.ID,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Status, "for", req.Approvers)
	approver := grants.Actor{Subject: "bob", Groups: []string{"mailbox-approvers"}}
	req, err = store.Approve(ctx, req.ID, approver, "ok for tonight")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Status, "until", req.GrantEnd.Format(time.Kitchen))

	// The watch brings the grant into memory; once the view has applied
	// the approval's revision, the proxied path sees the grant.
	if err := store.WaitRevision(ctx, req.Revision); err != nil {
		fmt.Println(err)
		return
	}
	live := store.LiveGrants("alice", now)
	fmt.Println(live[0].Subject, "may run", live[0].Target)
	fmt.Println("an hour later:", len(store.LiveGrants("alice", now.Add(time.Hour))), "live grants")
	// Output:
	// enabled: true approvers: mailbox-approvers
	// pending for mailbox-approvers
	// approved until 10:00AM
	// alice may run Exchange\New-MoveRequest
	// an hour later: 0 live grants
}
