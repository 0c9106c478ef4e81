package exchange_catalog_test

import data.elevate

ungated := {
	"control": {"enabled": false, "default_approvers": "", "system_accounts": {}},
	"policies": {"task": {}, "role": {}, "rolegroup": {}},
}

task_of(method, path) := d.task if {
	d := elevate.decision with input as {
		"method": method,
		"upstream": "exchange",
		"host": "exchange.elevate.test",
		"path": path,
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
}

test_call_maps_to_task[note] if {
	some note, tc in {
		"list mailboxes": {"method": "GET", "path": ["mailboxes"], "task": "Exchange\\Get-Mailbox"},
		"read a mailbox": {"method": "GET", "path": ["mailboxes", "mbx-1"], "task": "Exchange\\Get-Mailbox"},
		"read a mailbox whose id holds a slash": {"method": "GET", "path": ["mailboxes", "a/b"], "task": "Exchange\\Get-Mailbox"},
		"head of the list": {"method": "HEAD", "path": ["mailboxes"], "task": "Exchange\\Get-Mailbox"},
		"head of a mailbox": {"method": "HEAD", "path": ["mailboxes", "mbx-1"], "task": "Exchange\\Get-Mailbox"},
		"move a mailbox": {"method": "POST", "path": ["mailboxes", "mbx-1", "move-requests"], "task": "Exchange\\New-MoveRequest"},
		"search a mailbox": {"method": "POST", "path": ["mailboxes", "mbx-1", "search"], "task": "Exchange\\Search-Mailbox"},
		"create a journal rule": {"method": "POST", "path": ["journal-rules"], "task": "Exchange\\New-JournalRule"},
		"delete a journal rule": {"method": "DELETE", "path": ["journal-rules", "jr-1"], "task": "Exchange\\Remove-JournalRule"},
	}
	task_of(tc.method, tc.path) == tc.task
}

test_call_maps_to_no_task[note] if {
	some note, tc in {
		"root": {"method": "GET", "path": []},
		"unknown collection": {"method": "GET", "path": ["transport-rules"]},
		"write to the list": {"method": "PUT", "path": ["mailboxes"]},
		"delete a mailbox": {"method": "DELETE", "path": ["mailboxes", "mbx-1"]},
		"lower-case method": {"method": "get", "path": ["mailboxes"]},
		"empty mailbox id": {"method": "GET", "path": ["mailboxes", ""]},
		"empty id before move": {"method": "POST", "path": ["mailboxes", "", "move-requests"]},
		"read a search": {"method": "GET", "path": ["mailboxes", "mbx-1", "search"]},
		"head of a write": {"method": "HEAD", "path": ["journal-rules"]},
		"extra segment": {"method": "DELETE", "path": ["journal-rules", "jr-1", "x"]},
		"list journal rules": {"method": "GET", "path": ["journal-rules"]},
		"delete all journal rules": {"method": "DELETE", "path": ["journal-rules"]},
	}
	task_of(tc.method, tc.path) == ""
}

test_other_upstream_does_not_match if {
	d := elevate.decision with input as {
		"method": "GET",
		"upstream": "rabbitmq",
		"host": "rabbitmq.elevate.test",
		"path": ["mailboxes"],
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
	d.outcome == "deny"
	d.task == ""
}

test_role_holds_its_tasks if {
	elevate.catalog_index.roles["Exchange\\Mailbox Import Export"] == {
		"Exchange\\Search-Mailbox",
		"Exchange\\New-MoveRequest",
	}
}

test_role_group_holds_tasks_directly_and_through_roles if {
	elevate.catalog_index.role_groups["Exchange\\Organization Management"] == {
		"Exchange\\Search-Mailbox",
		"Exchange\\New-MoveRequest",
		"Exchange\\New-JournalRule",
		"Exchange\\Remove-JournalRule",
	}
}

test_only_get_mailbox_is_a_read if {
	reads := {name | some name, info in data.elevate.catalog.tasks; info.upstream == "exchange"; info.read}
	reads == {"Exchange\\Get-Mailbox"}
}

test_catalog_lists_the_demo_tasks if {
	exchange := {name | some name, info in data.elevate.catalog.tasks; info.upstream == "exchange"}
	exchange == {
		"Exchange\\Get-Mailbox",
		"Exchange\\New-MoveRequest",
		"Exchange\\Search-Mailbox",
		"Exchange\\New-JournalRule",
		"Exchange\\Remove-JournalRule",
	}
}
