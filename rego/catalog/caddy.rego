# Catalog of the upstream "caddy": the admin API of the Caddy web server.
#
# `caddy reload` sends POST load and `caddy stop` sends POST stop. Paths
# under config/ and id/<id>/ reach into the running configuration at any
# depth; the task depends only on the method, not on the part of the
# configuration. Calls this file does not list (metrics, ...) match no task
# and are refused by the decision.
package elevate.catalog

tasks["Caddy\\Get-Config"] := {
	"upstream": "caddy",
	"read": true,
	"description": "Read the running configuration, whole or in part",
}

tasks["Caddy\\Adapt-Config"] := {
	"upstream": "caddy",
	"read": true,
	"description": "Adapt a configuration to JSON without loading it",
}

tasks["Caddy\\Get-Upstreams"] := {
	"upstream": "caddy",
	"read": true,
	"description": "Read the state of the reverse proxy upstreams",
}

tasks["Caddy\\Get-CertificateAuthority"] := {
	"upstream": "caddy",
	"read": true,
	"description": "Read a certificate authority of the PKI app and its certificates",
}

tasks["Caddy\\Load-Config"] := {
	"upstream": "caddy",
	"read": false,
	"description": "Replace the whole running configuration",
}

tasks["Caddy\\Set-Config"] := {
	"upstream": "caddy",
	"read": false,
	"description": "Change part of the running configuration",
}

tasks["Caddy\\Stop-Server"] := {
	"upstream": "caddy",
	"read": false,
	"description": "Stop the server",
}

roles["Caddy\\Server Administration"] := {
	"Caddy\\Load-Config",
	"Caddy\\Set-Config",
	"Caddy\\Stop-Server",
}

# Calls: the whole configuration.
match contains "Caddy\\Load-Config" if {
	input.upstream == "caddy"
	input.method == "POST"
	input.path == ["load"]
}

match contains "Caddy\\Adapt-Config" if {
	input.upstream == "caddy"
	input.method == "POST"
	input.path == ["adapt"]
}

match contains "Caddy\\Stop-Server" if {
	input.upstream == "caddy"
	input.method == "POST"
	input.path == ["stop"]
}

# Calls: part of the configuration, by path (config/, config/apps/http/...)
# or by the @id of an object (id/<id>/...).
match contains "Caddy\\Get-Config" if {
	input.upstream == "caddy"
	input.method == "GET"
	input.path[0] == "config"
}

match contains "Caddy\\Get-Config" if {
	input.upstream == "caddy"
	input.method == "GET"
	input.path[0] == "id"
	input.path[1] != ""
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "POST"
	input.path[0] == "config"
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "PUT"
	input.path[0] == "config"
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "PATCH"
	input.path[0] == "config"
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "DELETE"
	input.path[0] == "config"
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "POST"
	input.path[0] == "id"
	input.path[1] != ""
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "PUT"
	input.path[0] == "id"
	input.path[1] != ""
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "PATCH"
	input.path[0] == "id"
	input.path[1] != ""
}

match contains "Caddy\\Set-Config" if {
	input.upstream == "caddy"
	input.method == "DELETE"
	input.path[0] == "id"
	input.path[1] != ""
}

# Calls: module endpoints.
match contains "Caddy\\Get-Upstreams" if {
	input.upstream == "caddy"
	input.method == "GET"
	input.path == ["reverse_proxy", "upstreams"]
}

match contains "Caddy\\Get-CertificateAuthority" if {
	input.upstream == "caddy"
	input.method == "GET"
	input.path = ["pki", "ca", id]
	id != ""
}

match contains "Caddy\\Get-CertificateAuthority" if {
	input.upstream == "caddy"
	input.method == "GET"
	input.path = ["pki", "ca", id, "certificates"]
	id != ""
}
