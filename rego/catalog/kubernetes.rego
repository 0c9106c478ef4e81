# Catalog of every upstream of type kubernetes: a Kubernetes API server.
#
# elevate reads each call as the API server reads it (package kubernetes)
# into input.kubernetes, with the task it names:
#   Kubernetes\VERB RESOURCE        Kubernetes\delete pods, Kubernetes\get secrets
#   Kubernetes\VERB RESOURCE/SUB    Kubernetes\update deployments/scale
#   Kubernetes\ACTION RESOURCE      Kubernetes\exec pods, Kubernetes\log pods
#   Kubernetes\VERB RESOURCE.GROUP  custom resources: Kubernetes\delete certificates.cert-manager.io
#   Kubernetes\discovery            /api, /apis, /openapi/..., /version
# Every call of a kubernetes upstream matches exactly its own task, so
# custom resources need no entry here. The tasks listed below are the ones
# `elevate task list` shows and the roles hold; a policy may name any task.
#
# The attributes a grant may be narrowed by (elevate request new
# --namespace prod --name web) are the call's namespace, name, resource,
# group, subresource and verb.
package elevate.catalog

match contains input.kubernetes.task if is_string(input.kubernetes.task)

attributes := {k: v |
	some k in kubernetes_attribute_names
	v := input.kubernetes[k]
	is_string(v)
	v != ""
} if is_object(input.kubernetes)

kubernetes_attribute_names := {"namespace", "name", "resource", "group", "subresource", "verb"}

# The listed tasks: each verb on the resources most clusters have, the
# actions on pods, and the scale subresources.
kubernetes_verbs := ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]

kubernetes_resources := {
	"pods", "services", "configmaps", "secrets", "namespaces", "nodes", "serviceaccounts",
	"persistentvolumeclaims", "persistentvolumes", "endpoints", "events", "resourcequotas",
	"limitranges", "replicationcontrollers",
	"deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs",
	"ingresses", "networkpolicies", "horizontalpodautoscalers", "poddisruptionbudgets",
	"roles", "rolebindings", "clusterroles", "clusterrolebindings",
	"storageclasses", "customresourcedefinitions",
	"validatingwebhookconfigurations", "mutatingwebhookconfigurations",
}

kubernetes_reads := {"get", "list", "watch"}

tasks[name] := info if {
	some resource in kubernetes_resources
	some verb in kubernetes_verbs
	name := sprintf("Kubernetes\\%s %s", [verb, resource])
	info := {
		"upstream": "kubernetes",
		"read": kubernetes_task_read(verb, resource),
		"description": sprintf("%s %s", [verb, resource]),
	}
}

kubernetes_task_read(verb, resource) if {
	verb in kubernetes_reads
	resource != "secrets"
}

default kubernetes_task_read(_, _) := false

kubernetes_actions := {
	"Kubernetes\\exec pods": "Run a command in a container (kubectl exec)",
	"Kubernetes\\attach pods": "Attach to a running container (kubectl attach)",
	"Kubernetes\\portforward pods": "Forward a local port to a pod (kubectl port-forward)",
	"Kubernetes\\log pods": "Read a container's log (kubectl logs)",
	"Kubernetes\\proxy pods": "Reach a pod's own HTTP endpoints through the API server",
	"Kubernetes\\proxy services": "Reach a service through the API server",
	"Kubernetes\\update deployments/scale": "Scale a deployment",
	"Kubernetes\\patch deployments/scale": "Scale a deployment",
	"Kubernetes\\update statefulsets/scale": "Scale a stateful set",
	"Kubernetes\\patch statefulsets/scale": "Scale a stateful set",
	"Kubernetes\\create serviceaccounts/token": "Mint a token for a service account",
	"Kubernetes\\create pods/eviction": "Evict a pod (kubectl drain)",
}

tasks[name] := {"upstream": "kubernetes", "read": false, "description": description} if {
	some name, description in kubernetes_actions
}

tasks["Kubernetes\\discovery"] := {
	"upstream": "kubernetes",
	"read": true,
	"description": "Read what the API server serves: /api, /apis, /openapi, /version, health checks",
}

# Roles: what a person on call asks for.
roles["Kubernetes\\Workload Operator"] := {name |
	some resource in {"pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs", "services", "configmaps", "horizontalpodautoscalers"}
	some verb in {"create", "update", "patch", "delete"}
	name := sprintf("Kubernetes\\%s %s", [verb, resource])
} | {
	"Kubernetes\\update deployments/scale", "Kubernetes\\patch deployments/scale",
	"Kubernetes\\update statefulsets/scale", "Kubernetes\\patch statefulsets/scale",
	"Kubernetes\\create pods/eviction",
}

roles["Kubernetes\\Debugger"] := {
	"Kubernetes\\exec pods", "Kubernetes\\attach pods", "Kubernetes\\portforward pods", "Kubernetes\\log pods",
	"Kubernetes\\proxy pods", "Kubernetes\\proxy services",
}

roles["Kubernetes\\Secret Reader"] := {"Kubernetes\\get secrets", "Kubernetes\\list secrets", "Kubernetes\\watch secrets"}

roles["Kubernetes\\Access Administrator"] := {name |
	some resource in {"roles", "rolebindings", "clusterroles", "clusterrolebindings", "serviceaccounts"}
	some verb in {"create", "update", "patch", "delete", "deletecollection"}
	name := sprintf("Kubernetes\\%s %s", [verb, resource])
} | {"Kubernetes\\create serviceaccounts/token"}

role_groups["Kubernetes\\Cluster Operations"] := {
	"roles": {"Kubernetes\\Workload Operator", "Kubernetes\\Debugger", "Kubernetes\\Secret Reader"},
}
