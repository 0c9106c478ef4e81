package caddy_catalog_test

import data.elevate

ungated := {
	"control": {"enabled": false, "default_approvers": "", "system_accounts": {}},
	"policies": {"task": {}, "role": {}, "rolegroup": {}},
}

task_of(method, path) := d.task if {
	d := elevate.decision with input as {
		"method": method,
		"upstream": "caddy",
		"host": "caddy.elevate.test",
		"path": path,
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
}

# Every route of the catalog, with the task it is. "config/" arrives as
# ["config", ""]: a trailing slash leaves an empty last segment.
routes := {
	"read the whole config": {"method": "GET", "path": ["config", ""], "task": "Caddy\\Get-Config"},
	"read the config without a slash": {"method": "GET", "path": ["config"], "task": "Caddy\\Get-Config"},
	"read part of the config": {"method": "GET", "path": ["config", "apps", "http", "servers", "srv0", "routes", "0"], "task": "Caddy\\Get-Config"},
	"read an object by id": {"method": "GET", "path": ["id", "api_route"], "task": "Caddy\\Get-Config"},
	"read inside an object by id": {"method": "GET", "path": ["id", "api_route", "handle", "0"], "task": "Caddy\\Get-Config"},
	"load a config": {"method": "POST", "path": ["load"], "task": "Caddy\\Load-Config"},
	"adapt a config": {"method": "POST", "path": ["adapt"], "task": "Caddy\\Adapt-Config"},
	"stop": {"method": "POST", "path": ["stop"], "task": "Caddy\\Stop-Server"},
	"append to the config": {"method": "POST", "path": ["config", "apps", "http", "servers", "srv0", "routes"], "task": "Caddy\\Set-Config"},
	"insert into the config": {"method": "PUT", "path": ["config", "apps", "http", "servers", "srv0", "routes", "0"], "task": "Caddy\\Set-Config"},
	"replace in the config": {"method": "PATCH", "path": ["config", "apps", "http", "servers", "srv0", "listen"], "task": "Caddy\\Set-Config"},
	"delete from the config": {"method": "DELETE", "path": ["config", "apps", "tls"], "task": "Caddy\\Set-Config"},
	"replace the whole config by path": {"method": "POST", "path": ["config", ""], "task": "Caddy\\Set-Config"},
	"delete the whole config": {"method": "DELETE", "path": ["config", ""], "task": "Caddy\\Set-Config"},
	"replace the config without a slash": {"method": "PUT", "path": ["config"], "task": "Caddy\\Set-Config"},
	"append by id": {"method": "POST", "path": ["id", "api_route", "handle"], "task": "Caddy\\Set-Config"},
	"insert by id": {"method": "PUT", "path": ["id", "api_route", "handle", "0"], "task": "Caddy\\Set-Config"},
	"replace by id": {"method": "PATCH", "path": ["id", "api_route"], "task": "Caddy\\Set-Config"},
	"delete by id": {"method": "DELETE", "path": ["id", "api_route"], "task": "Caddy\\Set-Config"},
	"upstreams": {"method": "GET", "path": ["reverse_proxy", "upstreams"], "task": "Caddy\\Get-Upstreams"},
	"read a certificate authority": {"method": "GET", "path": ["pki", "ca", "local"], "task": "Caddy\\Get-CertificateAuthority"},
	"read the certificates of an authority": {"method": "GET", "path": ["pki", "ca", "local", "certificates"], "task": "Caddy\\Get-CertificateAuthority"},
}

test_call_maps_to_task[note] if {
	some note, tc in routes
	task_of(tc.method, tc.path) == tc.task
}

test_head_is_matched_as_get[note] if {
	some note, tc in {note: tc | some note, tc in routes; tc.method == "GET"}
	task_of("HEAD", tc.path) == tc.task
}

test_every_task_has_a_route if {
	{tc.task | some tc in routes} == caddy_tasks
}

test_call_maps_to_no_task[note] if {
	some note, tc in {
		"root": {"method": "GET", "path": []},
		"metrics": {"method": "GET", "path": ["metrics"]},
		"read load": {"method": "GET", "path": ["load"]},
		"put load": {"method": "PUT", "path": ["load"]},
		"load with an extra segment": {"method": "POST", "path": ["load", "x"]},
		"load with a trailing slash": {"method": "POST", "path": ["load", ""]},
		"stop with the wrong method": {"method": "GET", "path": ["stop"]},
		"stop with an extra segment": {"method": "POST", "path": ["stop", "now"]},
		"adapt with the wrong method": {"method": "GET", "path": ["adapt"]},
		"lower-case method": {"method": "get", "path": ["config", ""]},
		"unknown method on the config": {"method": "OPTIONS", "path": ["config", ""]},
		"head of a write": {"method": "HEAD", "path": ["load"]},
		"config as a later segment": {"method": "POST", "path": ["x", "config"]},
		"id without an id": {"method": "DELETE", "path": ["id"]},
		"empty id": {"method": "DELETE", "path": ["id", ""]},
		"read id without an id": {"method": "GET", "path": ["id"]},
		"write the upstreams": {"method": "POST", "path": ["reverse_proxy", "upstreams"]},
		"upstreams with an extra segment": {"method": "GET", "path": ["reverse_proxy", "upstreams", "x"]},
		"certificate authorities": {"method": "GET", "path": ["pki", "ca"]},
		"empty authority": {"method": "GET", "path": ["pki", "ca", ""]},
		"authority with an extra segment": {"method": "GET", "path": ["pki", "ca", "local", "certificates", "x"]},
		"write an authority": {"method": "POST", "path": ["pki", "ca", "local"]},
	}
	task_of(tc.method, tc.path) == ""
}

test_uncatalogued_call_is_denied if {
	d := elevate.decision with input as {
		"method": "GET",
		"upstream": "caddy",
		"host": "caddy.elevate.test",
		"path": ["metrics"],
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as ungated
	d.outcome == "deny"
	d.reason == "no task in the catalog matches this call"
}

caddy_tasks := {name | some name, info in data.elevate.catalog.tasks; info.upstream == "caddy"}

test_reads if {
	reads := {name | some name in caddy_tasks; data.elevate.catalog.tasks[name].read}
	reads == {
		"Caddy\\Get-Config",
		"Caddy\\Adapt-Config",
		"Caddy\\Get-Upstreams",
		"Caddy\\Get-CertificateAuthority",
	}
}

test_server_administration_holds_every_write if {
	writes := {name | some name in caddy_tasks; not data.elevate.catalog.tasks[name].read}
	writes == {"Caddy\\Load-Config", "Caddy\\Set-Config", "Caddy\\Stop-Server"}
	elevate.catalog_index.roles["Caddy\\Server Administration"] == writes
}

test_reload_needs_a_grant_when_the_role_is_gated if {
	st := {
		"control": {"enabled": true, "default_approvers": "approvers", "system_accounts": {}},
		"policies": {"task": {}, "role": {"Caddy\\Server Administration": {"p1": {"id": "p1"}}}, "rolegroup": {}},
	}
	d := elevate.decision with input as {
		"method": "POST",
		"upstream": "caddy",
		"host": "caddy.elevate.test",
		"path": ["load"],
		"query": {},
		"subject": {"id": "alice", "groups": [], "mfa": false},
		"grants": [],
	}
		with data.elevate_state as st
	d.outcome == "grant_required"
	d.task == "Caddy\\Load-Config"
}
