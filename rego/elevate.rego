# The decision: which task a proxied call is, whether that task is gated, and
# whether the caller may run it now.
#
# The engine evaluates data.elevate.decision once per proxied call, with
#   input               the call (see README.md, "Input document"),
#   data.elevate_state  the access-control settings and approval policies,
#                       written by the engine (see README.md, "State document"),
#   time.now_ns()       the engine's clock.
# and reads data.elevate.catalog_index once per bundle load.
package elevate

import data.elevate.catalog

# The decision document. Exactly one branch applies, tried top to bottom:
# refusals first, then the catalog lookup, then gating, exemption and grants.
decision := verdict("deny", concat("; ", sort(deny))) if {
	count(deny) > 0
} else := verdict("deny", "no task in the catalog matches this call") if {
	count(matched) == 0
	not uncatalogued_allowed
} else := verdict("allow", sprintf("upstream %s allows calls outside the catalog", [input.upstream])) if {
	count(matched) == 0
	uncatalogued_allowed
} else := verdict("deny", sprintf("the call matches more than one task: %s", [concat(", ", sort(matched))])) if {
	count(matched) > 1
} else := verdict("allow", "task is not gated") if {
	task != ""
	not gated
} else := verdict("allow", "system account") if {
	gated
	system_account
} else := object.union(verdict("allow", "covered by an approved grant"), {"grant": grant_id}) if {
	gated
	grant_id
} else := object.union(verdict("grant_required", sprintf("task %s requires an approved grant", [task])), {"request": request_target}) if {
	gated
} else := verdict("deny", "the policy reached no decision")

verdict(outcome, reason) := {
	"outcome": outcome,
	"task": task,
	"gated": gated,
	"grant": "",
	"reason": reason,
}

# Refusals. Every rule in package elevate that adds a reason to deny turns the
# outcome into "deny", for system accounts and grant holders alike. Conditions
# (business hours, MFA, ...) are added as further files that extend this set.
deny contains "the call carries no subject" if {
	not valid_subject
}

deny contains "access-control state is not loaded" if {
	not state_loaded
}

state_loaded if is_boolean(data.elevate_state.control.enabled)

valid_subject if {
	is_string(input.subject.id)
	input.subject.id != ""
}

# The task names the catalog maps this call to. HEAD is mapped as GET, so a
# catalog lists reads under GET only.
matched := catalog.match if input.method != "HEAD"

matched := m if {
	input.method == "HEAD"
	m := catalog.match with input.method as "GET"
}

# The task of this call, or "" unless exactly one matched.
default task := ""

task := t if {
	count(matched) == 1
	some t in matched
}

uncatalogued_allowed if input.upstream in catalog.allow_uncatalogued

# Gating: access control is enabled and an approval policy covers the task,
# by task, by a role holding it, or by a role group holding it.
default gated := false

gated if {
	task != ""
	data.elevate_state.control.enabled == true
	policy_covers
}

policy_covers if count(data.elevate_state.policies.task[task]) > 0

policy_covers if {
	some role in task_roles
	count(data.elevate_state.policies.role[role]) > 0
}

policy_covers if {
	some group in task_role_groups
	count(data.elevate_state.policies.rolegroup[group]) > 0
}

# What to ask for to be granted the task: the task's own policy first, then
# a role's, then a role group's, by name.
request_target := {"scope": "task", "target": task} if {
	count(data.elevate_state.policies.task[task]) > 0
} else := {"scope": "role", "target": sort(covering_roles)[0]} if {
	count(covering_roles) > 0
} else := {"scope": "rolegroup", "target": sort(covering_role_groups)[0]} if {
	count(covering_role_groups) > 0
}

covering_roles contains role if {
	some role in task_roles
	count(data.elevate_state.policies.role[role]) > 0
}

covering_role_groups contains group if {
	some group in task_role_groups
	count(data.elevate_state.policies.rolegroup[group]) > 0
}

task_roles contains role if {
	some role, tasks in catalog.roles
	task in tasks
}

task_role_groups contains group if {
	some group, tasks in role_group_tasks
	task in tasks
}

system_account if data.elevate_state.control.system_accounts[input.subject.id] == true

# Grants: the caller's grants that cover the task and are live at time.now_ns().
# When several do, the one that ends last wins, then the smallest id.
covering_grants contains g if {
	some g in input.grants
	grant_covers(g, task)
	constraint_holds(g)
	g.not_before_ns <= time.now_ns()
	time.now_ns() < g.expires_at_ns
}

grant_covers(g, t) if {
	g.scope == "task"
	g.target == t
}

grant_covers(g, t) if {
	g.scope == "role"
	t in catalog.roles[g.target]
}

grant_covers(g, t) if {
	g.scope == "rolegroup"
	t in role_group_tasks[g.target]
}

# A grant narrowed by a constraint (a Kubernetes namespace, an object
# name, a route table's path parameter such as a RabbitMQ vhost) covers
# only calls whose attributes, as the call's catalog exposes them in
# data.elevate.catalog.attributes, have every value it names; a call that
# exposes no such attribute is not covered. HEAD is read as GET, as in the
# catalog lookup.
constraint_holds(g) if {
	every k, v in object.get(g, "constraint", {}) {
		call_attributes[k] == v
	}
}

default call_attributes := {}

call_attributes := catalog.attributes if input.method != "HEAD"

call_attributes := a if {
	input.method == "HEAD"
	a := catalog.attributes with input.method as "GET"
}

grant_id := min({g.id |
	some g in covering_grants
	g.expires_at_ns == max({h.expires_at_ns | some h in covering_grants})
})

# The catalog, flattened: what the engine reads at load time.
catalog_index := {
	"tasks": {name: info | some name, info in catalog.tasks},
	"roles": {name: tasks | some name, tasks in catalog.roles},
	"role_groups": role_group_tasks,
	"errors": catalog_errors,
}

# A role group holds tasks directly ("tasks") and through roles ("roles").
role_group_tasks[name] := direct | via_roles if {
	some name, group in catalog.role_groups
	direct := {t | some t in object.get(group, "tasks", set())}
	via_roles := {t |
		some role in object.get(group, "roles", set())
		some t in catalog.roles[role]
	}
}

# Mistakes in the catalog. The engine refuses a bundle that has any.
catalog_errors contains sprintf("role %s lists unknown task %s", [role, t]) if {
	some role, tasks in catalog.roles
	some t in tasks
	not catalog.tasks[t]
}

catalog_errors contains sprintf("role group %s lists unknown task %s", [group, t]) if {
	some group, g in catalog.role_groups
	some t in object.get(g, "tasks", set())
	not catalog.tasks[t]
}

catalog_errors contains sprintf("role group %s lists unknown role %s", [group, role]) if {
	some group, g in catalog.role_groups
	some role in object.get(g, "roles", set())
	not catalog.roles[role]
}

catalog_errors contains sprintf("task %s names no upstream", [t]) if {
	some t, info in catalog.tasks
	not is_string(info.upstream)
}
