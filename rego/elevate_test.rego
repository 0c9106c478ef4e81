package elevate_test

import data.elevate

# 2025-06-16T12:00:00Z, a Monday.
now := 1750075200000000000

hour := 3600000000000

call(method, path) := {
	"method": method,
	"upstream": "exchange",
	"host": "exchange.elevate.test",
	"path": path,
	"query": {},
	"subject": {"id": "alice", "groups": ["helpdesk"], "mfa": true},
	"grants": [],
}

search := call("POST", ["mailboxes", "mbx-1", "search"])

state(enabled, policies) := {
	"control": {
		"enabled": enabled,
		"default_approvers": "approvers",
		"system_accounts": {"svc-backup": true},
	},
	"policies": object.union({"task": {}, "role": {}, "rolegroup": {}}, policies),
}

policy(scope, target) := {scope: {target: {"p1": {
	"id": "p1",
	"scope": scope,
	"target": target,
	"approval": "manual",
	"approvers": "approvers",
}}}}

gated_by_task := state(true, policy("task", "Exchange\\Search-Mailbox"))

grant(id, scope, target, not_before, expires_at) := {
	"id": id,
	"request_id": concat("", ["req-", id]),
	"scope": scope,
	"target": target,
	"not_before_ns": not_before,
	"expires_at_ns": expires_at,
}

live_grant(id, scope, target) := grant(id, scope, target, now - hour, now + hour)

as_subject(call_input, id) := object.union(call_input, {"subject": {"id": id}})

holding(call_input, grants) := object.union(call_input, {"grants": grants})

decide(call_input, st) := d if {
	d := elevate.decision with input as call_input
		with data.elevate_state as st
		with time.now_ns as now
}

test_ungated_task_is_allowed if {
	d := decide(search, state(true, {}))
	d == {
		"outcome": "allow",
		"task": "Exchange\\Search-Mailbox",
		"gated": false,
		"grant": "",
		"reason": "task is not gated",
	}
}

test_policy_gates_task[note] if {
	some note, policies in {
		"by task": policy("task", "Exchange\\Search-Mailbox"),
		"by role": policy("role", "Exchange\\Mailbox Import Export"),
		"by role group": policy("rolegroup", "Exchange\\Organization Management"),
	}
	d := decide(search, state(true, policies))
	d.outcome == "grant_required"
	d.gated == true
	d.task == "Exchange\\Search-Mailbox"
	d.reason == "task Exchange\\Search-Mailbox requires an approved grant"
}

test_policy_elsewhere_does_not_gate[note] if {
	some note, policies in {
		"other task": policy("task", "Exchange\\New-JournalRule"),
		"role without the task": policy("role", "Exchange\\Nobody"),
		"unknown role group": policy("rolegroup", "Exchange\\Nobody"),
	}
	d := decide(search, state(true, policies))
	d.outcome == "allow"
	d.gated == false
}

test_disabled_control_does_not_gate if {
	d := decide(search, state(false, policy("task", "Exchange\\Search-Mailbox")))
	d.outcome == "allow"
	d.gated == false
	d.reason == "task is not gated"
}

test_system_account_is_allowed if {
	d := decide(as_subject(search, "svc-backup"), gated_by_task)
	d.outcome == "allow"
	d.gated == true
	d.reason == "system account"
	d.grant == ""
}

test_grant_covers_task[note] if {
	some note, g in {
		"by task": live_grant("g1", "task", "Exchange\\Search-Mailbox"),
		"by role": live_grant("g1", "role", "Exchange\\Mailbox Import Export"),
		"by role group": live_grant("g1", "rolegroup", "Exchange\\Organization Management"),
	}
	d := decide(holding(search, [g]), gated_by_task)
	d.outcome == "allow"
	d.gated == true
	d.grant == "g1"
	d.reason == "covered by an approved grant"
}

test_grant_does_not_cover_task[note] if {
	some note, g in {
		"other task": live_grant("g1", "task", "Exchange\\New-MoveRequest"),
		"role without the task": live_grant("g1", "role", "Exchange\\Nobody"),
		"unknown scope": live_grant("g1", "tenant", "Exchange\\Search-Mailbox"),
		"expired": grant("g1", "task", "Exchange\\Search-Mailbox", now - (2 * hour), now - hour),
		"ends now": grant("g1", "task", "Exchange\\Search-Mailbox", now - hour, now),
		"not yet started": grant("g1", "task", "Exchange\\Search-Mailbox", now + 1, now + hour),
	}
	d := decide(holding(search, [g]), gated_by_task)
	d.outcome == "grant_required"
	d.grant == ""
}

test_grant_starting_now_covers if {
	g := grant("g1", "task", "Exchange\\Search-Mailbox", now, now + 1)
	d := decide(holding(search, [g]), gated_by_task)
	d.outcome == "allow"
	d.grant == "g1"
}

test_grant_choice_is_deterministic[note] if {
	some note, tc in {
		"the one that ends last": {
			"grants": [
				grant("a", "task", "Exchange\\Search-Mailbox", now - hour, now + hour),
				grant("b", "role", "Exchange\\Mailbox Import Export", now - hour, now + (2 * hour)),
			],
			"want": "b",
		},
		"then the smallest id": {
			"grants": [
				grant("c", "task", "Exchange\\Search-Mailbox", now - hour, now + hour),
				grant("b", "rolegroup", "Exchange\\Organization Management", now - hour, now + hour),
			],
			"want": "b",
		},
	}
	d := decide(holding(search, tc.grants), gated_by_task)
	d.grant == tc.want
}

test_deny_rule_overrides[note] if {
	some note, call_input in {
		"grant holder": holding(search, [live_grant("g1", "task", "Exchange\\Search-Mailbox")]),
		"system account": as_subject(search, "svc-backup"),
		"ungated call": call("GET", ["mailboxes"]),
	}
	d := decide(call_input, gated_by_task) with elevate.deny as {"refused by a test condition"}
	d.outcome == "deny"
	d.reason == "refused by a test condition"
	d.grant == ""
}

test_deny_reasons_are_joined_in_order if {
	d := decide(search, gated_by_task) with elevate.deny as {"b second", "a first"}
	d.reason == "a first; b second"
}

test_missing_subject_is_denied[note] if {
	some note, subject in {
		"empty id": {"id": ""},
		"no id": {"groups": []},
		"id not a string": {"id": 7},
	}
	d := decide(object.union(object.remove(search, ["subject"]), {"subject": subject}), state(false, {}))
	d.outcome == "deny"
	d.reason == "the call carries no subject"
}

test_missing_state_is_denied if {
	d := elevate.decision with input as search with time.now_ns as now
	d.outcome == "deny"
	d.reason == "access-control state is not loaded"
}

test_unknown_call_is_denied if {
	d := decide(call("PATCH", ["mailboxes"]), state(false, {}))
	d == {
		"outcome": "deny",
		"task": "",
		"gated": false,
		"grant": "",
		"reason": "no task in the catalog matches this call",
	}
}

test_ambiguous_call_is_denied if {
	d := decide(search, state(false, {})) with data.elevate.catalog.match as {"B\\Two", "A\\One"}
	d.outcome == "deny"
	d.task == ""
	d.reason == "the call matches more than one task: A\\One, B\\Two"
}

test_upstream_may_allow_uncatalogued_calls if {
	d := decide(call("PATCH", ["mailboxes"]), state(true, {})) with data.elevate.catalog.allow_uncatalogued as {"exchange"}
	d.outcome == "allow"
	d.task == ""
	d.reason == "upstream exchange allows calls outside the catalog"
}

test_uncatalogued_calls_stay_denied_elsewhere if {
	d := decide(call("PATCH", ["mailboxes"]), state(true, {})) with data.elevate.catalog.allow_uncatalogued as {"rabbitmq"}
	d.outcome == "deny"
}

# A failure prints each error, so that `opa test` says what is wrong with
# the catalog rather than only FAIL.
test_catalog_index_has_no_errors if {
	errors := [e | some e in elevate.catalog_index.errors; print("catalog index error:", e)]
	errors == []
}

test_catalog_errors_are_reported if {
	errors := elevate.catalog_index.errors with data.elevate.catalog.roles as {"R": {"Nope"}}
		with data.elevate.catalog.role_groups as {"G": {"roles": {"Missing"}, "tasks": {"Gone"}}}
	errors == {
		"role R lists unknown task Nope",
		"role group G lists unknown role Missing",
		"role group G lists unknown task Gone",
	}
}
