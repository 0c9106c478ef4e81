package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/elevate-pam/elevate/audit"
)

func Example() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.log")
	now := func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }

	log, err := audit.Open(audit.Config{Path: path, Now: now})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, r := range []audit.Record{
		{Kind: audit.KindLifecycle, Event: "request.submitted", Subject: "alice", RequestID: "req-1", Task: `Exchange\New-MoveRequest`},
		{Kind: audit.KindLifecycle, Event: "request.approved", Subject: "bob", RequestID: "req-1", Task: `Exchange\New-MoveRequest`},
		{Kind: audit.KindCall, Event: "allowed", Subject: "alice", Method: "POST", Path: "/mailboxes/m1/move-requests", Task: `Exchange\New-MoveRequest`},
	} {
		if _, err := log.Write(ctx, r); err != nil {
			panic(err) // a gated call would be refused here
		}
	}

	page, err := log.Query(ctx, audit.Filter{Subject: "alice"})
	if err != nil {
		panic(err)
	}
	for _, r := range page.Records {
		fmt.Println(r.Seq, r.Time.Format(time.RFC3339), r.Kind, r.Event, r.Task)
	}
	if err := log.Close(); err != nil {
		panic(err)
	}

	rep, err := audit.Verify(path)
	fmt.Println("verified:", rep.Records, "records in", rep.Files, "file, err:", err)
	// Output:
	// 3 2026-03-01T09:00:00Z call allowed Exchange\New-MoveRequest
	// 1 2026-03-01T09:00:00Z lifecycle request.submitted Exchange\New-MoveRequest
	// verified: 3 records in 1 file, err: <nil>
}
