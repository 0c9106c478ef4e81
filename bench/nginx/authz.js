// Authorization of the nginx + njs + OPA composite that `make bench`
// measures: for each call, nginx's auth_request runs check(), which asks
// OPA's REST API (through the pooled /_opa location) whether the call may
// pass, and answers 204 (forward) or 403.
function check(r) {
	var input = {
		method: r.variables.request_method,
		path: r.variables.request_uri,
		authorization: r.headersIn.Authorization || ""
	};
	r.subrequest("/_opa", { method: "POST", body: JSON.stringify({ input: input }) })
		.then(function (reply) {
			var allowed = false;
			if (reply.status === 200) {
				try {
					allowed = JSON.parse(reply.responseText).result === true;
				} catch (e) {
					allowed = false;
				}
			}
			r.return(allowed ? 204 : 403);
		})
		.catch(function () {
			r.return(500);
		});
}

export default { check };
