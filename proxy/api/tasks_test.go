package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTaskList: GET /v1/tasks lists what the bundle lets callers request,
// for one upstream when asked; an unknown upstream is refused with the
// nearest name.
func TestTaskList(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Upstreams = []UpstreamInfo{{Name: "exchange", Prefix: "/exchange/"}} })
	bob := e.token("bob")

	r := e.call("GET", "/v1/tasks", "", "")
	requireProblem(t, r, http.StatusUnauthorized)

	list := func(query string) Tasks {
		r := e.call("GET", "/v1/tasks"+query, bob, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		var out Tasks
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		return out
	}
	names := func(ts Tasks) []string {
		var out []string
		for _, t := range ts.Tasks {
			out = append(out, t.Name)
		}
		return out
	}
	all := list("")
	require.Subset(t, names(all), []string{`Exchange\Get-Mailbox`, `Exchange\New-MoveRequest`, `RabbitMQ\Remove-Queue`})
	require.IsIncreasing(t, names(all))

	exchange := list("?upstream=exchange")
	require.Equal(t, []string{`Exchange\Get-Mailbox`, `Exchange\New-JournalRule`, `Exchange\New-MoveRequest`,
		`Exchange\Remove-JournalRule`, `Exchange\Search-Mailbox`}, names(exchange))
	require.True(t, exchange.Tasks[0].Read)
	require.Equal(t, "exchange", exchange.Tasks[0].Upstream)
	require.NotEmpty(t, exchange.Tasks[0].Description)
	require.Equal(t, []SetEntry{{Name: `Exchange\Mailbox Import Export`, Tasks: []string{`Exchange\New-MoveRequest`, `Exchange\Search-Mailbox`}}}, exchange.Roles)
	require.Len(t, exchange.RoleGroups, 1)
	require.Equal(t, `Exchange\Organization Management`, exchange.RoleGroups[0].Name)

	r = e.call("GET", "/v1/tasks?upstream=exchnage", bob, "")
	requireProblem(t, r, http.StatusBadRequest)
	require.Contains(t, r.body, `no upstream named \"exchnage\"; did you mean \"exchange\"?`)
}

// TestUnknownTargetSaysWhatWasMeant: a request or policy for a task, role
// or role group the catalog does not know names the nearest one it does,
// ignoring case; a name far from every known one gets no suggestion.
func TestUnknownTargetSaysWhatWasMeant(t *testing.T) {
	e := newEnv(t, nil)
	bob, ada := e.token("bob"), e.token("ada", "admins")
	for _, tc := range []struct {
		desc, path, token, scope, target, want string
	}{
		{"a typo", "/v1/requests", bob, "task", `Exchange\New-MoveReqest`, `Exchange\New-MoveRequest`},
		{"the case", "/v1/requests", bob, "task", `exchange\new-moverequest`, `Exchange\New-MoveRequest`},
		{"no scope", "/v1/requests", bob, "task", `New-MoveRequest`, `Exchange\New-MoveRequest`},
		{"a role", "/v1/requests", bob, "role", `Exchange\Mailbox Import-Export`, `Exchange\Mailbox Import Export`},
		{"a role group", "/v1/policies", ada, "rolegroup", `Exchange\Organisation Management`, `Exchange\Organization Management`},
		{"a policy's task", "/v1/policies", ada, "task", `Exchange\Remove-JournalRul`, `Exchange\Remove-JournalRule`},
		{"nothing near", "/v1/requests", bob, "task", `Payroll\Raise-Salary`, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fields := map[string]any{"scope": tc.scope, "target": tc.target, "reason": "r"}
			if tc.path == "/v1/policies" {
				fields = map[string]any{"scope": tc.scope, "target": tc.target, "approval": "manual"}
			}
			body, err := json.Marshal(fields)
			require.NoError(t, err)
			r := e.call("POST", tc.path, tc.token, string(body))
			requireProblem(t, r, http.StatusBadRequest)
			var p struct{ Detail string }
			require.NoError(t, json.Unmarshal([]byte(r.body), &p))
			require.Contains(t, p.Detail, "in the policy catalog")
			if tc.want == "" {
				require.NotContains(t, p.Detail, "did you mean")
				return
			}
			require.Contains(t, p.Detail, `; did you mean "`+tc.want+`"?`)
		})
	}
}
