# Catalog of the upstream "rabbitmq": the RabbitMQ management HTTP API, with
# the route prefix removed so that input.path starts at "api".
#
# Virtual host names arrive decoded: the default virtual host, sent as %2F,
# is the single segment "/". Calls this file does not list (parameters,
# limits, operator policies, queue actions, ...) match no task and are
# refused by the decision.
package elevate.catalog

# Reads.
tasks["RabbitMQ\\Get-Overview"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "Read the cluster overview, its name, the caller's identity, the UI extensions and the feature flags",
}

tasks["RabbitMQ\\Get-Node"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List cluster nodes or read one node",
}

tasks["RabbitMQ\\Get-VirtualHost"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List virtual hosts or read one virtual host",
}

tasks["RabbitMQ\\Get-User"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List users or read one user; the answer includes password hashes",
}

tasks["RabbitMQ\\Get-Permission"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List or read the permissions and topic permissions of users in virtual hosts",
}

tasks["RabbitMQ\\Get-Queue"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List queues or read one queue",
}

tasks["RabbitMQ\\Get-Exchange"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List exchanges or read one exchange",
}

tasks["RabbitMQ\\Get-Binding"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List bindings or read one binding",
}

tasks["RabbitMQ\\Get-Connection"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List client connections or read one connection",
}

tasks["RabbitMQ\\Get-Channel"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List channels or read one channel",
}

tasks["RabbitMQ\\Get-Policy"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "List policies or read one policy",
}

tasks["RabbitMQ\\Test-Health"] := {
	"upstream": "rabbitmq",
	"read": true,
	"description": "Run a health check or the aliveness test of a virtual host",
}

# Users and permissions.
tasks["RabbitMQ\\New-User"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Create a user, or replace its password and tags",
}

tasks["RabbitMQ\\Remove-User"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete one user, or several at once",
}

tasks["RabbitMQ\\Set-Permission"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Set the permissions or topic permissions of a user in a virtual host",
}

tasks["RabbitMQ\\Remove-Permission"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Remove the permissions or topic permissions of a user in a virtual host",
}

# Topology.
tasks["RabbitMQ\\New-VirtualHost"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Create a virtual host, or update its metadata",
}

tasks["RabbitMQ\\Remove-VirtualHost"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete a virtual host with everything in it",
}

tasks["RabbitMQ\\New-Queue"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Declare a queue",
}

tasks["RabbitMQ\\Remove-Queue"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete a queue and its messages",
}

tasks["RabbitMQ\\Clear-Queue"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Purge the messages of a queue",
}

tasks["RabbitMQ\\New-Exchange"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Declare an exchange",
}

tasks["RabbitMQ\\Remove-Exchange"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete an exchange",
}

tasks["RabbitMQ\\New-Binding"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Bind a queue or an exchange to an exchange",
}

tasks["RabbitMQ\\Remove-Binding"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete a binding",
}

tasks["RabbitMQ\\Set-Policy"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Create or replace a policy",
}

tasks["RabbitMQ\\Remove-Policy"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Delete a policy",
}

# Definitions, messages and connections.
tasks["RabbitMQ\\Export-Definitions"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Export the definitions of the cluster or of a virtual host, including users' password hashes",
}

tasks["RabbitMQ\\Import-Definitions"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Import definitions into the cluster or into a virtual host",
}

tasks["RabbitMQ\\Publish-Message"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Publish a message to an exchange",
}

tasks["RabbitMQ\\Get-Message"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Get messages from a queue; they are consumed or requeued as the request asks",
}

tasks["RabbitMQ\\Close-Connection"] := {
	"upstream": "rabbitmq",
	"read": false,
	"description": "Close a client connection",
}

# Roles.
roles["RabbitMQ\\User Administration"] := {
	"RabbitMQ\\New-User",
	"RabbitMQ\\Remove-User",
	"RabbitMQ\\Set-Permission",
	"RabbitMQ\\Remove-Permission",
}

roles["RabbitMQ\\Topology Administration"] := {
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

# Role groups.
role_groups["RabbitMQ\\Administrators"] := {
	"roles": {
		"RabbitMQ\\User Administration",
		"RabbitMQ\\Topology Administration",
	},
	"tasks": {
		"RabbitMQ\\Export-Definitions",
		"RabbitMQ\\Import-Definitions",
	},
}

# Calls: cluster-wide reads.
match contains "RabbitMQ\\Get-Overview" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "overview"]
}

match contains "RabbitMQ\\Get-Overview" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "whoami"]
}

match contains "RabbitMQ\\Get-Overview" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "cluster-name"]
}

match contains "RabbitMQ\\Get-Overview" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "extensions"]
}

match contains "RabbitMQ\\Get-Overview" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "feature-flags"]
}

match contains "RabbitMQ\\Get-Node" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "nodes"]
}

match contains "RabbitMQ\\Get-Node" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "nodes", node]
	node != ""
}

# Calls: health checks. The aliveness test and api/healthchecks are the
# older forms; api/health/checks lists one check per path.
match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "aliveness-test", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "healthchecks", "node"]
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "healthchecks", "node", node]
	node != ""
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "health", "checks", check]
	check != ""
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "health", "checks", "port-listener", port]
	port != ""
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "health", "checks", "protocol-listener", protocol]
	protocol != ""
}

match contains "RabbitMQ\\Test-Health" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "health", "checks", "certificate-expiration", within, unit]
	within != ""
	unit != ""
}

# Calls: virtual hosts.
match contains "RabbitMQ\\Get-VirtualHost" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "vhosts"]
}

match contains "RabbitMQ\\Get-VirtualHost" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "vhosts", vhost]
	vhost != ""
}

match contains "RabbitMQ\\New-VirtualHost" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "vhosts", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Remove-VirtualHost" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "vhosts", vhost]
	vhost != ""
}

# Calls: users. api/users/without-permissions lists users too, and falls
# under the rule for one user.
match contains "RabbitMQ\\Get-User" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "users"]
}

match contains "RabbitMQ\\Get-User" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "users", user]
	user != ""
}

match contains "RabbitMQ\\New-User" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "users", user]
	user != ""
}

match contains "RabbitMQ\\Remove-User" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "users", user]
	user != ""
}

match contains "RabbitMQ\\Remove-User" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path == ["api", "users", "bulk-delete"]
}

# Calls: permissions and topic permissions, read from the permissions
# collections, from a virtual host or from a user.
match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "permissions"]
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "permissions", vhost, user]
	vhost != ""
	user != ""
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "topic-permissions"]
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "topic-permissions", vhost, user]
	vhost != ""
	user != ""
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "vhosts", vhost, "permissions"]
	vhost != ""
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "vhosts", vhost, "topic-permissions"]
	vhost != ""
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "users", user, "permissions"]
	user != ""
}

match contains "RabbitMQ\\Get-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "users", user, "topic-permissions"]
	user != ""
}

match contains "RabbitMQ\\Set-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "permissions", vhost, user]
	vhost != ""
	user != ""
}

match contains "RabbitMQ\\Set-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "topic-permissions", vhost, user]
	vhost != ""
	user != ""
}

match contains "RabbitMQ\\Remove-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "permissions", vhost, user]
	vhost != ""
	user != ""
}

match contains "RabbitMQ\\Remove-Permission" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "topic-permissions", vhost, user]
	vhost != ""
	user != ""
}

# Calls: queues.
match contains "RabbitMQ\\Get-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "queues"]
}

match contains "RabbitMQ\\Get-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "queues", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Get-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "queues", vhost, queue]
	vhost != ""
	queue != ""
}

match contains "RabbitMQ\\New-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "queues", vhost, queue]
	vhost != ""
	queue != ""
}

match contains "RabbitMQ\\Remove-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "queues", vhost, queue]
	vhost != ""
	queue != ""
}

match contains "RabbitMQ\\Clear-Queue" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "queues", vhost, queue, "contents"]
	vhost != ""
	queue != ""
}

match contains "RabbitMQ\\Get-Message" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path = ["api", "queues", vhost, queue, "get"]
	vhost != ""
	queue != ""
}

# Calls: exchanges.
match contains "RabbitMQ\\Get-Exchange" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "exchanges"]
}

match contains "RabbitMQ\\Get-Exchange" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "exchanges", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Get-Exchange" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "exchanges", vhost, exchange]
	vhost != ""
	exchange != ""
}

match contains "RabbitMQ\\New-Exchange" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "exchanges", vhost, exchange]
	vhost != ""
	exchange != ""
}

match contains "RabbitMQ\\Remove-Exchange" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "exchanges", vhost, exchange]
	vhost != ""
	exchange != ""
}

match contains "RabbitMQ\\Publish-Message" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path = ["api", "exchanges", vhost, exchange, "publish"]
	vhost != ""
	exchange != ""
}

# Calls: bindings. A binding is addressed by its source exchange ("e"), the
# kind of its destination ("q" for a queue, "e" for an exchange), the
# destination, and, to read or delete one binding, its properties key.
match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "bindings"]
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "bindings", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "bindings", vhost, "e", source, "q", queue]
	vhost != ""
	source != ""
	queue != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "bindings", vhost, "e", source, "e", destination]
	vhost != ""
	source != ""
	destination != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "bindings", vhost, "e", source, "q", queue, props]
	vhost != ""
	source != ""
	queue != ""
	props != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "bindings", vhost, "e", source, "e", destination, props]
	vhost != ""
	source != ""
	destination != ""
	props != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "queues", vhost, queue, "bindings"]
	vhost != ""
	queue != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "exchanges", vhost, exchange, "bindings", "source"]
	vhost != ""
	exchange != ""
}

match contains "RabbitMQ\\Get-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "exchanges", vhost, exchange, "bindings", "destination"]
	vhost != ""
	exchange != ""
}

match contains "RabbitMQ\\New-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path = ["api", "bindings", vhost, "e", source, "q", queue]
	vhost != ""
	source != ""
	queue != ""
}

match contains "RabbitMQ\\New-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path = ["api", "bindings", vhost, "e", source, "e", destination]
	vhost != ""
	source != ""
	destination != ""
}

match contains "RabbitMQ\\Remove-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "bindings", vhost, "e", source, "q", queue, props]
	vhost != ""
	source != ""
	queue != ""
	props != ""
}

match contains "RabbitMQ\\Remove-Binding" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "bindings", vhost, "e", source, "e", destination, props]
	vhost != ""
	source != ""
	destination != ""
	props != ""
}

# Calls: connections and channels.
match contains "RabbitMQ\\Get-Connection" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "connections"]
}

match contains "RabbitMQ\\Get-Connection" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "connections", name]
	name != ""
}

match contains "RabbitMQ\\Get-Connection" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "vhosts", vhost, "connections"]
	vhost != ""
}

match contains "RabbitMQ\\Close-Connection" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "connections", name]
	name != ""
}

match contains "RabbitMQ\\Get-Channel" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "channels"]
}

match contains "RabbitMQ\\Get-Channel" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "channels", name]
	name != ""
}

match contains "RabbitMQ\\Get-Channel" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "connections", name, "channels"]
	name != ""
}

match contains "RabbitMQ\\Get-Channel" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "vhosts", vhost, "channels"]
	vhost != ""
}

# Calls: policies.
match contains "RabbitMQ\\Get-Policy" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "policies"]
}

match contains "RabbitMQ\\Get-Policy" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "policies", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Get-Policy" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "policies", vhost, name]
	vhost != ""
	name != ""
}

match contains "RabbitMQ\\Set-Policy" if {
	input.upstream == "rabbitmq"
	input.method == "PUT"
	input.path = ["api", "policies", vhost, name]
	vhost != ""
	name != ""
}

match contains "RabbitMQ\\Remove-Policy" if {
	input.upstream == "rabbitmq"
	input.method == "DELETE"
	input.path = ["api", "policies", vhost, name]
	vhost != ""
	name != ""
}

# Calls: definitions. An export holds every user's password hash, so it is a
# task of its own rather than a read.
match contains "RabbitMQ\\Export-Definitions" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path == ["api", "definitions"]
}

match contains "RabbitMQ\\Export-Definitions" if {
	input.upstream == "rabbitmq"
	input.method == "GET"
	input.path = ["api", "definitions", vhost]
	vhost != ""
}

match contains "RabbitMQ\\Import-Definitions" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path == ["api", "definitions"]
}

match contains "RabbitMQ\\Import-Definitions" if {
	input.upstream == "rabbitmq"
	input.method == "POST"
	input.path = ["api", "definitions", vhost]
	vhost != ""
}
