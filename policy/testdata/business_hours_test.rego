package business_hours_test

import data.elevate

gated_search := {
	"control": {"enabled": true, "default_approvers": "approvers", "system_accounts": {}},
	"policies": {
		"task": {"Exchange\\Search-Mailbox": {"p1": {"id": "p1"}}},
		"role": {},
		"rolegroup": {},
	},
}

call(path, at) := {
	"method": "POST",
	"upstream": "exchange",
	"host": "exchange.elevate.test",
	"path": path,
	"query": {},
	"subject": {"id": "alice", "groups": [], "mfa": true},
	"grants": [{
		"id": "g1",
		"request_id": "r1",
		"scope": "task",
		"target": "Exchange\\Search-Mailbox",
		"not_before_ns": at - 3600000000000,
		"expires_at_ns": at + 3600000000000,
	}],
}

outcome(path, rfc3339) := d.outcome if {
	at := time.parse_rfc3339_ns(rfc3339)
	d := elevate.decision with input as call(path, at)
		with data.elevate_state as gated_search
		with time.now_ns as at
}

test_gated_task_follows_business_hours[note] if {
	some note, tc in {
		"Monday noon": {"at": "2025-06-16T12:00:00Z", "want": "allow"},
		"Monday 07:59": {"at": "2025-06-16T07:59:59Z", "want": "deny"},
		"Monday 18:00": {"at": "2025-06-16T18:00:00Z", "want": "deny"},
		"Saturday noon": {"at": "2025-06-21T12:00:00Z", "want": "deny"},
	}
	outcome(["mailboxes", "mbx-1", "search"], tc.at) == tc.want
}

test_ungated_task_runs_at_any_hour if {
	outcome(["journal-rules"], "2025-06-21T23:00:00Z") == "allow"
}
