# Kubernetes changes are never standing access: while access control is
# enabled, a call to a kubernetes upstream that is not a read (see
# data.elevate.catalog: every write, every action such as exec, logs and
# port-forward, and every read of secrets) is refused unless an approval
# policy covers its task, by task, role or role group. With a policy it is
# gated like any task: it passes under a live grant.
package elevate

deny contains sprintf("%s changes a Kubernetes cluster and no approval policy covers it; an administrator adds one with: elevate policy create --task '%s'", [task, task]) if {
	is_object(input.kubernetes)
	input.kubernetes.read == false
	task != ""
	data.elevate_state.control.enabled == true
	not policy_covers
	not system_account
}
