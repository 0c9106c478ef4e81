# Catalog of the demo upstream "exchange": a small REST API modelled on the
# management tasks of Exchange Online.
#
# Every catalog file declares package elevate.catalog and adds entries to the
# same four documents: tasks, roles, role_groups and match (see README.md).
package elevate.catalog

# Tasks of this upstream.
tasks["Exchange\\Get-Mailbox"] := {
	"upstream": "exchange",
	"read": true,
	"description": "List mailboxes or read one mailbox",
}

tasks["Exchange\\New-MoveRequest"] := {
	"upstream": "exchange",
	"read": false,
	"description": "Start moving a mailbox to another database",
}

tasks["Exchange\\Search-Mailbox"] := {
	"upstream": "exchange",
	"read": false,
	"description": "Search the content of a mailbox",
}

tasks["Exchange\\New-JournalRule"] := {
	"upstream": "exchange",
	"read": false,
	"description": "Create a journal rule",
}

tasks["Exchange\\Remove-JournalRule"] := {
	"upstream": "exchange",
	"read": false,
	"description": "Delete a journal rule",
}

# Roles: named sets of tasks.
roles["Exchange\\Mailbox Import Export"] := {
	"Exchange\\Search-Mailbox",
	"Exchange\\New-MoveRequest",
}

# Role groups: roles, plus tasks held directly.
role_groups["Exchange\\Organization Management"] := {
	"roles": {"Exchange\\Mailbox Import Export"},
	"tasks": {
		"Exchange\\New-JournalRule",
		"Exchange\\Remove-JournalRule",
	},
}

# Calls. input.path holds the decoded segments after the route prefix. Each
# rule tests input.upstream, input.method and input.path by equality, so OPA's
# rule index picks the candidates without trying every rule. Reads are listed
# under GET only: the decision maps HEAD to GET.
match contains "Exchange\\Get-Mailbox" if {
	input.upstream == "exchange"
	input.method == "GET"
	input.path == ["mailboxes"]
}

match contains "Exchange\\Get-Mailbox" if {
	input.upstream == "exchange"
	input.method == "GET"
	input.path = ["mailboxes", id]
	id != ""
}

match contains "Exchange\\New-MoveRequest" if {
	input.upstream == "exchange"
	input.method == "POST"
	input.path = ["mailboxes", id, "move-requests"]
	id != ""
}

match contains "Exchange\\Search-Mailbox" if {
	input.upstream == "exchange"
	input.method == "POST"
	input.path = ["mailboxes", id, "search"]
	id != ""
}

match contains "Exchange\\New-JournalRule" if {
	input.upstream == "exchange"
	input.method == "POST"
	input.path == ["journal-rules"]
}

match contains "Exchange\\Remove-JournalRule" if {
	input.upstream == "exchange"
	input.method == "DELETE"
	input.path = ["journal-rules", id]
	id != ""
}
