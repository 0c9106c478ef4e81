package kubernetes_catalog_test

import data.elevate

# A call as the proxy hands it over: input.kubernetes as package kubernetes
# reads it, with its task and whether it is a read.
call(kube, grants) := {
	"method": "DELETE",
	"upstream": "prod",
	"host": "elevate.test",
	"path": [],
	"query": {},
	"subject": {"id": "alice", "groups": [], "mfa": false},
	"grants": grants,
	"kubernetes": kube,
}

delete_web_in_prod := {
	"verb": "delete", "group": "", "version": "v1", "resource": "pods", "namespace": "prod", "name": "web",
	"watch": false, "dry_run": false, "non_resource": false, "path": "/api/v1/namespaces/prod/pods/web",
	"task": "Kubernetes\\delete pods", "read": false,
}

delete_web_in_staging := object.union(delete_web_in_prod, {"namespace": "staging", "path": "/api/v1/namespaces/staging/pods/web"})

list_pods := {
	"verb": "list", "group": "", "version": "v1", "resource": "pods", "namespace": "prod",
	"watch": false, "dry_run": false, "non_resource": false, "path": "/api/v1/namespaces/prod/pods",
	"task": "Kubernetes\\list pods", "read": true,
}

get_secret := object.union(list_pods, {"verb": "get", "resource": "secrets", "name": "db", "task": "Kubernetes\\get secrets", "read": false})

state(policies) := {
	"control": {"enabled": true, "default_approvers": "approvers", "system_accounts": {}},
	"policies": object.union({"task": {}, "role": {}, "rolegroup": {}}, policies),
}

no_policies := state({})

delete_pods_gated := state({"task": {"Kubernetes\\delete pods": {"p1": {"id": "p1"}}}})

grant(constraint) := {
	"id": "g1", "request_id": "r1", "scope": "task", "target": "Kubernetes\\delete pods",
	"constraint": constraint, "not_before_ns": 0, "expires_at_ns": 9223372036854775807,
}

decide(kube, grants, st) := d if {
	d := elevate.decision with input as call(kube, grants) with data.elevate_state as st
}

test_every_call_is_its_own_task if {
	off := object.union(no_policies, {"control": {"enabled": false, "default_approvers": "", "system_accounts": {}}})
	d := decide(delete_web_in_prod, [], off)
	d.task == "Kubernetes\\delete pods"
	d.outcome == "allow"
}

test_custom_resources_are_tasks_too if {
	kube := object.union(delete_web_in_prod, {"group": "cert-manager.io", "resource": "certificates", "task": "Kubernetes\\delete certificates.cert-manager.io"})
	d := decide(kube, [], delete_pods_gated)
	d.task == "Kubernetes\\delete certificates.cert-manager.io"
	d.outcome == "deny" # a change, and no policy covers it
}

test_reads_pass_without_a_policy if {
	d := decide(list_pods, [], no_policies)
	d.outcome == "allow"
	not d.gated
}

test_changes_without_a_policy_are_refused if {
	d := decide(delete_web_in_prod, [], no_policies)
	d.outcome == "deny"
	contains(d.reason, "elevate policy create --task 'Kubernetes\\delete pods'")
}

test_secret_reads_without_a_policy_are_refused if {
	d := decide(get_secret, [], no_policies)
	d.outcome == "deny"
}

test_system_accounts_are_not_refused if {
	st := object.union(no_policies, {"control": {"enabled": true, "default_approvers": "", "system_accounts": {"alice": true}}})
	d := decide(delete_web_in_prod, [], st)
	d.outcome == "allow"
}

test_a_gated_change_needs_a_grant if {
	d := decide(delete_web_in_prod, [], delete_pods_gated)
	d.outcome == "grant_required"
	d.request == {"scope": "task", "target": "Kubernetes\\delete pods"}
}

test_an_unconstrained_grant_covers_every_namespace if {
	decide(delete_web_in_prod, [grant({})], delete_pods_gated).outcome == "allow"
	decide(delete_web_in_staging, [grant({})], delete_pods_gated).outcome == "allow"
}

test_a_namespace_grant_covers_its_namespace_only if {
	g := grant({"namespace": "prod"})
	decide(delete_web_in_prod, [g], delete_pods_gated).outcome == "allow"
	decide(delete_web_in_staging, [g], delete_pods_gated).outcome == "grant_required"
}

test_an_object_grant_covers_its_object_only if {
	g := grant({"namespace": "prod", "name": "web"})
	decide(delete_web_in_prod, [g], delete_pods_gated).outcome == "allow"
	other := object.union(delete_web_in_prod, {"name": "api"})
	decide(other, [g], delete_pods_gated).outcome == "grant_required"
}

test_a_constraint_on_an_attribute_the_call_lacks_does_not_cover if {
	g := grant({"namespace": "prod"})
	cluster_wide := object.remove(delete_web_in_prod, ["namespace"])
	decide(cluster_wide, [g], delete_pods_gated).outcome == "grant_required"
}

test_constraints_never_cover_other_catalogs if {
	d := elevate.decision with input as {
		"method": "POST", "upstream": "exchange", "host": "exchange.elevate.test",
		"path": ["mailboxes", "alice", "move-requests"], "query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [object.union(grant({"namespace": "prod"}), {"target": "Exchange\\New-MoveRequest"})],
	}
		with data.elevate_state as state({"task": {"Exchange\\New-MoveRequest": {"p1": {"id": "p1"}}}})
	d.outcome == "grant_required"
}

test_attributes_are_the_strings_of_the_call if {
	attrs := data.elevate.catalog.attributes with input as call(delete_web_in_prod, [])
	attrs == {"verb": "delete", "resource": "pods", "namespace": "prod", "name": "web"}
}

test_listed_tasks_and_reads if {
	tasks := data.elevate.catalog.tasks
	tasks["Kubernetes\\get pods"].read
	not tasks["Kubernetes\\get secrets"].read
	not tasks["Kubernetes\\delete pods"].read
	not tasks["Kubernetes\\exec pods"].read
	tasks["Kubernetes\\discovery"].read
}

test_roles_hold_listed_tasks if {
	index := elevate.catalog_index
	"Kubernetes\\delete pods" in index.roles["Kubernetes\\Workload Operator"]
	"Kubernetes\\exec pods" in index.roles["Kubernetes\\Debugger"]
	"Kubernetes\\get secrets" in index.roles["Kubernetes\\Secret Reader"]
	"Kubernetes\\exec pods" in index.role_groups["Kubernetes\\Cluster Operations"]
	count(index.errors) == 0
}
