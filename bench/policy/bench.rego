# Catalog of the benchmark's upstream "bench": one hot task, Bench\Invoke-Call,
# that every measured call runs, and 999 further tasks that only carry
# approval policies and grants, so that their number can be varied.
#
# `make bench` copies the default bundle (rego/) and adds this file as
# catalog/bench.rego; see docs/performance.md.
package elevate.catalog

tasks["Bench\\Invoke-Call"] := {
	"upstream": "bench",
	"read": false,
	"description": "The benchmark's measured call",
}

tasks[name] := {
	"upstream": "bench",
	"read": false,
	"description": "A benchmark task that only carries policies and grants",
} if {
	some i in numbers.range(1, 999)
	name := sprintf("Bench\\Task-%04d", [i])
}

match contains "Bench\\Invoke-Call" if {
	input.upstream == "bench"
	input.method == "POST"
	input.path == ["call"]
}

match contains name if {
	input.upstream == "bench"
	input.method == "POST"
	input.path = ["tasks", n]
	name := concat("", ["Bench\\Task-", n])
	tasks[name]
}
