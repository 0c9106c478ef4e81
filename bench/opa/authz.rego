# The policy of the nginx + njs + OPA composite that `make bench` measures
# elevate against: the same work a team would assemble without elevate.
# It verifies the caller's RS256 token and looks the caller's grant up in
# OPA data (data.bench, written by the harness as data.json next to this
# file), for the benchmark's one call.
package bench.authz

default allow := false

allow if {
	input.method == "POST"
	input.path == "/call"
	some grant in data.bench.grants[claims.sub]
	grant.task == "Bench\\Invoke-Call"
	now := time.now_ns()
	grant.not_before_ns <= now
	now < grant.expires_at_ns
}

# The verified claims of the bearer token; undefined when it does not verify.
claims := payload if {
	startswith(input.authorization, "Bearer ")
	token := substring(input.authorization, 7, -1)
	[valid, _, payload] := io.jwt.decode_verify(token, {
		"cert": data.bench.public_key,
		"iss": data.bench.issuer,
		"aud": data.bench.audience,
		"alg": "RS256",
	})
	valid
}
