package rabbitmq_catalog_test

import data.elevate

ungated := {
	"control": {"enabled": false, "default_approvers": "", "system_accounts": {}},
	"policies": {"task": {}, "role": {}, "rolegroup": {}},
}

task_of(method, path) := d.task if {
	d := elevate.decision with input as {
		"method": method,
		"upstream": "rabbitmq",
		"host": "rabbitmq.elevate.test",
		"path": path,
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
}

# Every route of the catalog, with the task it is. The default virtual host,
# sent as %2F, arrives as the single segment "/".
routes := {
	"overview": {"method": "GET", "path": ["api", "overview"], "task": "RabbitMQ\\Get-Overview"},
	"whoami": {"method": "GET", "path": ["api", "whoami"], "task": "RabbitMQ\\Get-Overview"},
	"cluster name": {"method": "GET", "path": ["api", "cluster-name"], "task": "RabbitMQ\\Get-Overview"},
	"extensions": {"method": "GET", "path": ["api", "extensions"], "task": "RabbitMQ\\Get-Overview"},
	"feature flags": {"method": "GET", "path": ["api", "feature-flags"], "task": "RabbitMQ\\Get-Overview"},
	"list nodes": {"method": "GET", "path": ["api", "nodes"], "task": "RabbitMQ\\Get-Node"},
	"read a node": {"method": "GET", "path": ["api", "nodes", "rabbit@mq-1"], "task": "RabbitMQ\\Get-Node"},
	"aliveness of the default vhost": {"method": "GET", "path": ["api", "aliveness-test", "/"], "task": "RabbitMQ\\Test-Health"},
	"old node health check": {"method": "GET", "path": ["api", "healthchecks", "node"], "task": "RabbitMQ\\Test-Health"},
	"old health check of a node": {"method": "GET", "path": ["api", "healthchecks", "node", "rabbit@mq-1"], "task": "RabbitMQ\\Test-Health"},
	"alarms check": {"method": "GET", "path": ["api", "health", "checks", "alarms"], "task": "RabbitMQ\\Test-Health"},
	"port listener check": {"method": "GET", "path": ["api", "health", "checks", "port-listener", "5672"], "task": "RabbitMQ\\Test-Health"},
	"protocol listener check": {"method": "GET", "path": ["api", "health", "checks", "protocol-listener", "amqp"], "task": "RabbitMQ\\Test-Health"},
	"certificate expiration check": {"method": "GET", "path": ["api", "health", "checks", "certificate-expiration", "1", "months"], "task": "RabbitMQ\\Test-Health"},
	"list vhosts": {"method": "GET", "path": ["api", "vhosts"], "task": "RabbitMQ\\Get-VirtualHost"},
	"read the default vhost": {"method": "GET", "path": ["api", "vhosts", "/"], "task": "RabbitMQ\\Get-VirtualHost"},
	"create a vhost": {"method": "PUT", "path": ["api", "vhosts", "orders"], "task": "RabbitMQ\\New-VirtualHost"},
	"delete a vhost": {"method": "DELETE", "path": ["api", "vhosts", "orders"], "task": "RabbitMQ\\Remove-VirtualHost"},
	"list users": {"method": "GET", "path": ["api", "users"], "task": "RabbitMQ\\Get-User"},
	"read a user": {"method": "GET", "path": ["api", "users", "bob"], "task": "RabbitMQ\\Get-User"},
	"users without permissions": {"method": "GET", "path": ["api", "users", "without-permissions"], "task": "RabbitMQ\\Get-User"},
	"create a user": {"method": "PUT", "path": ["api", "users", "bob"], "task": "RabbitMQ\\New-User"},
	"delete a user": {"method": "DELETE", "path": ["api", "users", "bob"], "task": "RabbitMQ\\Remove-User"},
	"delete users in bulk": {"method": "POST", "path": ["api", "users", "bulk-delete"], "task": "RabbitMQ\\Remove-User"},
	"list permissions": {"method": "GET", "path": ["api", "permissions"], "task": "RabbitMQ\\Get-Permission"},
	"read a permission": {"method": "GET", "path": ["api", "permissions", "/", "bob"], "task": "RabbitMQ\\Get-Permission"},
	"list topic permissions": {"method": "GET", "path": ["api", "topic-permissions"], "task": "RabbitMQ\\Get-Permission"},
	"read a topic permission": {"method": "GET", "path": ["api", "topic-permissions", "/", "bob"], "task": "RabbitMQ\\Get-Permission"},
	"permissions of a vhost": {"method": "GET", "path": ["api", "vhosts", "/", "permissions"], "task": "RabbitMQ\\Get-Permission"},
	"topic permissions of a vhost": {"method": "GET", "path": ["api", "vhosts", "/", "topic-permissions"], "task": "RabbitMQ\\Get-Permission"},
	"permissions of a user": {"method": "GET", "path": ["api", "users", "bob", "permissions"], "task": "RabbitMQ\\Get-Permission"},
	"topic permissions of a user": {"method": "GET", "path": ["api", "users", "bob", "topic-permissions"], "task": "RabbitMQ\\Get-Permission"},
	"set a permission": {"method": "PUT", "path": ["api", "permissions", "/", "bob"], "task": "RabbitMQ\\Set-Permission"},
	"set a topic permission": {"method": "PUT", "path": ["api", "topic-permissions", "/", "bob"], "task": "RabbitMQ\\Set-Permission"},
	"remove a permission": {"method": "DELETE", "path": ["api", "permissions", "/", "bob"], "task": "RabbitMQ\\Remove-Permission"},
	"remove a topic permission": {"method": "DELETE", "path": ["api", "topic-permissions", "/", "bob"], "task": "RabbitMQ\\Remove-Permission"},
	"list queues": {"method": "GET", "path": ["api", "queues"], "task": "RabbitMQ\\Get-Queue"},
	"queues of the default vhost": {"method": "GET", "path": ["api", "queues", "/"], "task": "RabbitMQ\\Get-Queue"},
	"read a queue": {"method": "GET", "path": ["api", "queues", "/", "orders"], "task": "RabbitMQ\\Get-Queue"},
	"declare a queue": {"method": "PUT", "path": ["api", "queues", "/", "orders"], "task": "RabbitMQ\\New-Queue"},
	"delete a queue": {"method": "DELETE", "path": ["api", "queues", "/", "orders"], "task": "RabbitMQ\\Remove-Queue"},
	"purge a queue": {"method": "DELETE", "path": ["api", "queues", "/", "orders", "contents"], "task": "RabbitMQ\\Clear-Queue"},
	"get messages": {"method": "POST", "path": ["api", "queues", "/", "orders", "get"], "task": "RabbitMQ\\Get-Message"},
	"list exchanges": {"method": "GET", "path": ["api", "exchanges"], "task": "RabbitMQ\\Get-Exchange"},
	"exchanges of a vhost": {"method": "GET", "path": ["api", "exchanges", "/"], "task": "RabbitMQ\\Get-Exchange"},
	"read an exchange": {"method": "GET", "path": ["api", "exchanges", "/", "amq.direct"], "task": "RabbitMQ\\Get-Exchange"},
	"declare an exchange": {"method": "PUT", "path": ["api", "exchanges", "/", "events"], "task": "RabbitMQ\\New-Exchange"},
	"delete an exchange": {"method": "DELETE", "path": ["api", "exchanges", "/", "events"], "task": "RabbitMQ\\Remove-Exchange"},
	"publish": {"method": "POST", "path": ["api", "exchanges", "/", "events", "publish"], "task": "RabbitMQ\\Publish-Message"},
	"list bindings": {"method": "GET", "path": ["api", "bindings"], "task": "RabbitMQ\\Get-Binding"},
	"bindings of a vhost": {"method": "GET", "path": ["api", "bindings", "/"], "task": "RabbitMQ\\Get-Binding"},
	"bindings of an exchange to a queue": {"method": "GET", "path": ["api", "bindings", "/", "e", "events", "q", "orders"], "task": "RabbitMQ\\Get-Binding"},
	"bindings between exchanges": {"method": "GET", "path": ["api", "bindings", "/", "e", "events", "e", "audit"], "task": "RabbitMQ\\Get-Binding"},
	"read a queue binding": {"method": "GET", "path": ["api", "bindings", "/", "e", "events", "q", "orders", "order.created"], "task": "RabbitMQ\\Get-Binding"},
	"read an exchange binding": {"method": "GET", "path": ["api", "bindings", "/", "e", "events", "e", "audit", "~"], "task": "RabbitMQ\\Get-Binding"},
	"bindings of a queue": {"method": "GET", "path": ["api", "queues", "/", "orders", "bindings"], "task": "RabbitMQ\\Get-Binding"},
	"bindings from an exchange": {"method": "GET", "path": ["api", "exchanges", "/", "events", "bindings", "source"], "task": "RabbitMQ\\Get-Binding"},
	"bindings to an exchange": {"method": "GET", "path": ["api", "exchanges", "/", "events", "bindings", "destination"], "task": "RabbitMQ\\Get-Binding"},
	"bind a queue": {"method": "POST", "path": ["api", "bindings", "/", "e", "events", "q", "orders"], "task": "RabbitMQ\\New-Binding"},
	"bind an exchange": {"method": "POST", "path": ["api", "bindings", "/", "e", "events", "e", "audit"], "task": "RabbitMQ\\New-Binding"},
	"unbind a queue": {"method": "DELETE", "path": ["api", "bindings", "/", "e", "events", "q", "orders", "order.created"], "task": "RabbitMQ\\Remove-Binding"},
	"unbind an exchange": {"method": "DELETE", "path": ["api", "bindings", "/", "e", "events", "e", "audit", "~"], "task": "RabbitMQ\\Remove-Binding"},
	"list connections": {"method": "GET", "path": ["api", "connections"], "task": "RabbitMQ\\Get-Connection"},
	"read a connection": {"method": "GET", "path": ["api", "connections", "10.0.0.5:51234 -> 10.0.0.9:5672"], "task": "RabbitMQ\\Get-Connection"},
	"connections of a vhost": {"method": "GET", "path": ["api", "vhosts", "/", "connections"], "task": "RabbitMQ\\Get-Connection"},
	"close a connection": {"method": "DELETE", "path": ["api", "connections", "10.0.0.5:51234 -> 10.0.0.9:5672"], "task": "RabbitMQ\\Close-Connection"},
	"list channels": {"method": "GET", "path": ["api", "channels"], "task": "RabbitMQ\\Get-Channel"},
	"read a channel": {"method": "GET", "path": ["api", "channels", "10.0.0.5:51234 -> 10.0.0.9:5672 (1)"], "task": "RabbitMQ\\Get-Channel"},
	"channels of a connection": {"method": "GET", "path": ["api", "connections", "10.0.0.5:51234 -> 10.0.0.9:5672", "channels"], "task": "RabbitMQ\\Get-Channel"},
	"channels of a vhost": {"method": "GET", "path": ["api", "vhosts", "/", "channels"], "task": "RabbitMQ\\Get-Channel"},
	"list policies": {"method": "GET", "path": ["api", "policies"], "task": "RabbitMQ\\Get-Policy"},
	"policies of a vhost": {"method": "GET", "path": ["api", "policies", "/"], "task": "RabbitMQ\\Get-Policy"},
	"read a policy": {"method": "GET", "path": ["api", "policies", "/", "ha-all"], "task": "RabbitMQ\\Get-Policy"},
	"set a policy": {"method": "PUT", "path": ["api", "policies", "/", "ha-all"], "task": "RabbitMQ\\Set-Policy"},
	"remove a policy": {"method": "DELETE", "path": ["api", "policies", "/", "ha-all"], "task": "RabbitMQ\\Remove-Policy"},
	"export definitions": {"method": "GET", "path": ["api", "definitions"], "task": "RabbitMQ\\Export-Definitions"},
	"export the definitions of a vhost": {"method": "GET", "path": ["api", "definitions", "/"], "task": "RabbitMQ\\Export-Definitions"},
	"import definitions": {"method": "POST", "path": ["api", "definitions"], "task": "RabbitMQ\\Import-Definitions"},
	"import the definitions of a vhost": {"method": "POST", "path": ["api", "definitions", "/"], "task": "RabbitMQ\\Import-Definitions"},
}

test_call_maps_to_task[note] if {
	some note, tc in routes
	task_of(tc.method, tc.path) == tc.task
}

get_routes := {note: tc | some note, tc in routes; tc.method == "GET"}

test_head_is_matched_as_get[note] if {
	some note, tc in get_routes
	task_of("HEAD", tc.path) == tc.task
}

# Every task of the built-in table has a route here. A layer of policy.dirs
# may add RabbitMQ tasks of its own (runtime parameters, say), which its own
# tests cover: the built-in tasks are those routed or listed as reads here.
test_every_task_has_a_route if {
	builtin_tasks := {tc.task | some tc in routes}
	every t in builtin_tasks {
		t in rabbitmq_tasks
	}
	count(builtin_tasks) == 32 # the tasks of catalog/rabbitmq.yaml
}

test_call_maps_to_no_task[note] if {
	some note, tc in {
		"root": {"method": "GET", "path": []},
		"outside api": {"method": "GET", "path": ["overview"]},
		"api alone": {"method": "GET", "path": ["api"]},
		"unknown collection": {"method": "GET", "path": ["api", "no-such-collection"]},
		"set the cluster name": {"method": "PUT", "path": ["api", "cluster-name"]},
		"enable a feature flag": {"method": "PUT", "path": ["api", "feature-flags", "quorum_queue", "enable"]},
		"lower-case method": {"method": "get", "path": ["api", "overview"]},
		"head of a write": {"method": "HEAD", "path": ["api", "queues", "/", "orders", "get"]},
		"write to a list": {"method": "POST", "path": ["api", "queues"]},
		"delete every user": {"method": "DELETE", "path": ["api", "users"]},
		"create a user with a trailing slash": {"method": "PUT", "path": ["api", "users", ""]},
		"empty vhost": {"method": "DELETE", "path": ["api", "queues", "", "orders"]},
		"empty queue": {"method": "DELETE", "path": ["api", "queues", "/", ""]},
		"vhost split on its slash": {"method": "DELETE", "path": ["api", "queues", "", "", "orders"]},
		"extra segment after a queue": {"method": "DELETE", "path": ["api", "queues", "/", "orders", "extra"]},
		"extra segment after contents": {"method": "DELETE", "path": ["api", "queues", "/", "orders", "contents", "x"]},
		"extra segment after a user": {"method": "PUT", "path": ["api", "users", "bob", "x"]},
		"extra segment after a permission": {"method": "PUT", "path": ["api", "permissions", "/", "bob", "x"]},
		"permission without a user": {"method": "PUT", "path": ["api", "permissions", "/"]},
		"extra segment after definitions": {"method": "POST", "path": ["api", "definitions", "/", "x"]},
		"extra segment after a health check": {"method": "GET", "path": ["api", "health", "checks", "alarms", "x", "y"]},
		"purge with the wrong method": {"method": "POST", "path": ["api", "queues", "/", "orders", "contents"]},
		"get messages with the wrong method": {"method": "GET", "path": ["api", "queues", "/", "orders", "get"]},
		"publish with the wrong method": {"method": "PUT", "path": ["api", "exchanges", "/", "events", "publish"]},
		"patch a queue": {"method": "PATCH", "path": ["api", "queues", "/", "orders"]},
		"create a connection": {"method": "PUT", "path": ["api", "connections", "c1"]},
		"post to a user": {"method": "POST", "path": ["api", "users", "bob"]},
		"extra segment after bulk-delete": {"method": "POST", "path": ["api", "users", "bulk-delete", "x"]},
		"bind with an unknown destination kind": {"method": "POST", "path": ["api", "bindings", "/", "e", "events", "x", "orders"]},
		"bind from a queue": {"method": "POST", "path": ["api", "bindings", "/", "q", "orders", "q", "other"]},
		"bind with properties": {"method": "POST", "path": ["api", "bindings", "/", "e", "events", "q", "orders", "k"]},
		"unbind without properties": {"method": "DELETE", "path": ["api", "bindings", "/", "e", "events", "q", "orders"]},
		"queue actions": {"method": "POST", "path": ["api", "queues", "/", "orders", "actions"]},
		"close connections of a user": {"method": "DELETE", "path": ["api", "connections", "username", "bob"]},
	}
	task_of(tc.method, tc.path) == ""
}

test_uncatalogued_call_is_denied if {
	d := elevate.decision with input as {
		"method": "PUT",
		"upstream": "rabbitmq",
		"host": "rabbitmq.elevate.test",
		"path": ["api", "no-such-collection", "shovel", "/", "s1"],
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
	d.outcome == "deny"
	d.reason == "no task in the catalog matches this call"
}

test_exchange_paths_do_not_match if {
	task_of("GET", ["mailboxes"]) == ""
}

rabbitmq_tasks := {name | some name, info in data.elevate.catalog.tasks; info.upstream == "rabbitmq"}

test_reads if {
	builtin_tasks := {tc.task | some tc in routes}
	reads := {name | some name in builtin_tasks; data.elevate.catalog.tasks[name].read}
	reads == {
		"RabbitMQ\\Get-Overview",
		"RabbitMQ\\Get-Node",
		"RabbitMQ\\Get-VirtualHost",
		"RabbitMQ\\Get-User",
		"RabbitMQ\\Get-Permission",
		"RabbitMQ\\Get-Queue",
		"RabbitMQ\\Get-Exchange",
		"RabbitMQ\\Get-Binding",
		"RabbitMQ\\Get-Connection",
		"RabbitMQ\\Get-Channel",
		"RabbitMQ\\Get-Policy",
		"RabbitMQ\\Test-Health",
	}
}

test_reads_are_get_only[note] if {
	some note, tc in {note: tc | some note, tc in routes; data.elevate.catalog.tasks[tc.task].read}
	tc.method == "GET"
}

test_export_and_get_message_are_not_reads[name] if {
	some name in {"RabbitMQ\\Export-Definitions", "RabbitMQ\\Get-Message"}
	data.elevate.catalog.tasks[name].read == false
}

test_user_administration_role if {
	elevate.catalog_index.roles["RabbitMQ\\User Administration"] == {
		"RabbitMQ\\New-User",
		"RabbitMQ\\Remove-User",
		"RabbitMQ\\Set-Permission",
		"RabbitMQ\\Remove-Permission",
	}
}

test_topology_administration_role if {
	elevate.catalog_index.roles["RabbitMQ\\Topology Administration"] == {
		"RabbitMQ\\New-VirtualHost",
		"RabbitMQ\\Remove-VirtualHost",
		"RabbitMQ\\New-Queue",
		"RabbitMQ\\Remove-Queue",
		"RabbitMQ\\Clear-Queue",
		"RabbitMQ\\New-Exchange",
		"RabbitMQ\\Remove-Exchange",
		"RabbitMQ\\New-Binding",
		"RabbitMQ\\Remove-Binding",
		"RabbitMQ\\Set-Policy",
		"RabbitMQ\\Remove-Policy",
	}
}

test_administrators_hold_both_roles_and_definitions if {
	want := (elevate.catalog_index.roles["RabbitMQ\\User Administration"] | elevate.catalog_index.roles["RabbitMQ\\Topology Administration"]) | {
		"RabbitMQ\\Export-Definitions",
		"RabbitMQ\\Import-Definitions",
	}
	elevate.catalog_index.role_groups["RabbitMQ\\Administrators"] == want
}

test_role_on_administrators_gates_a_queue_purge if {
	st := {
		"control": {"enabled": true, "default_approvers": "approvers", "system_accounts": {}},
		"policies": {"task": {}, "role": {}, "rolegroup": {"RabbitMQ\\Administrators": {"p1": {"id": "p1"}}}},
	}
	d := elevate.decision with input as {
		"method": "DELETE",
		"upstream": "rabbitmq",
		"host": "rabbitmq.elevate.test",
		"path": ["api", "queues", "/", "orders", "contents"],
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as st
	d.outcome == "grant_required"
	d.task == "RabbitMQ\\Clear-Queue"
}

# A grant narrowed to one virtual host ({vhost} in the route) covers that
# virtual host's queues only; HEAD is read as GET here too.
purge_gated := {
	"control": {"enabled": true, "default_approvers": "approvers", "system_accounts": {}},
	"policies": {"task": {"RabbitMQ\\Clear-Queue": {"p1": {"id": "p1"}}, "RabbitMQ\\Get-Queue": {"p2": {"id": "p2"}}}, "role": {}, "rolegroup": {}},
}

vhost_grant(task, vhost) := {
	"id": "g1", "request_id": "r1", "scope": "task", "target": task, "constraint": {"vhost": vhost},
	"not_before_ns": 0, "expires_at_ns": 9223372036854775807,
}

decide_in(method, path, grants) := d if {
	d := elevate.decision with input as {
		"method": method, "upstream": "rabbitmq", "host": "rabbitmq.elevate.test", "path": path, "query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false}, "grants": grants,
	}
		with data.elevate_state as purge_gated
}

test_a_vhost_grant_covers_its_vhost_only if {
	g := vhost_grant("RabbitMQ\\Clear-Queue", "orders")
	decide_in("DELETE", ["api", "queues", "orders", "q1", "contents"], [g]).outcome == "allow"
	decide_in("DELETE", ["api", "queues", "/", "q1", "contents"], [g]).outcome == "grant_required"
	decide_in("DELETE", ["api", "queues", "billing", "q1", "contents"], [g]).outcome == "grant_required"
}

test_a_vhost_grant_covers_head_as_get if {
	g := vhost_grant("RabbitMQ\\Get-Queue", "orders")
	decide_in("HEAD", ["api", "queues", "orders", "q1"], [g]).outcome == "allow"
	decide_in("HEAD", ["api", "queues", "billing", "q1"], [g]).outcome == "grant_required"
}

test_attributes_name_the_route_parameters if {
	attrs := data.elevate.catalog.attributes with input as {
		"method": "DELETE", "upstream": "rabbitmq", "path": ["api", "queues", "orders", "q1", "contents"], "query": {},
	}
	attrs == {"vhost": "orders", "queue": "q1"}
}
