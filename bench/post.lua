-- wrk script of `make bench`: every request is a POST with a small JSON
-- body; the harness adds the Authorization header with -H.
wrk.method = "POST"
wrk.body = '{"reason":"benchmark"}'
wrk.headers["Content-Type"] = "application/json"
