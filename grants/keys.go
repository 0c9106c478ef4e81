package grants

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// keys is the layout of the state under one prefix, as the package
// documentation's table lists it: every key the package reads or writes is
// named here, and nowhere else.
type keys struct {
	kControl       string // Control
	kPolicies      string // policies/<policy id>: Policy
	kRequests      string // requests/<request id>: Request
	kGrants        string // grants/<grant id>: Grant, attached to a lease
	kPending       string // pending/<requester>/<scope>/<target>: pendingEntry
	kExpiries      string // expiries/<time>/<request id>: request id
	kPolicyTargets string // policy-targets/<scope>/<target>: policy id
	kPolicyCount   string // policies-count: number of policies
	kLeader        string // leader/<lease id>: the sweeping leader's election
	kOutbox        string // outbox/<request id>/<event kind>: Event
}

func newKeys(prefix string) keys {
	return keys{
		kControl:  prefix + "control",
		kPolicies: prefix + "policies/",
		kRequests: prefix + "requests/",
		kGrants:   prefix + "grants/",
		kPending:  prefix + "pending/",
		// The names below must not start with those above: "policies-count"
		// is not under "policies/".
		kExpiries:      prefix + "expiries/",
		kPolicyTargets: prefix + "policy-targets/",
		kPolicyCount:   prefix + "policies-count",
		kLeader:        prefix + "leader",
		kOutbox:        prefix + "outbox/",
	}
}

func (k keys) policyKey(id string) string  { return k.kPolicies + id }
func (k keys) requestKey(id string) string { return k.kRequests + id }

// grantKey is the key of the grant of request reqID.
func (k keys) grantKey(reqID string) string { return k.kGrants + grantID(reqID) }

// pendingKey is the pending index entry of requester, scope and target. The
// requester and the target are path-escaped, so that a "/" in either cannot
// add a key level.
//
// A constrained request adds its constraint as one more level: requests
// for one target under different constraints are pending side by side.
func (k keys) pendingKey(requester string, scope Scope, target string, c Constraint) string {
	return k.kPending + url.PathEscape(requester) + "/" + string(scope) + "/" + url.PathEscape(target) + c.keyPart()
}

// policyTargetKey is the policy target index entry of scope and target,
// escaped as in pendingKey.
func (k keys) policyTargetKey(scope Scope, target string) string {
	return k.kPolicyTargets + string(scope) + "/" + url.PathEscape(target)
}

// expiryKey is the key of r in the expiry index. It depends only on r's ID
// and ExpiresAt, so every mutation can derive the key to delete from the
// record it read.
func (k keys) expiryKey(r *Request) string {
	return k.kExpiries + expiryStamp(r.ExpiresAt) + "/" + r.ID
}

// expiryStamp formats t so that the stamps sort as the times do.
func expiryStamp(t time.Time) string { return t.UTC().Format("20060102T150405.000000000Z") }

// outboxKey is the outbox entry of the event of kind about request id.
func (k keys) outboxKey(id, kind string) string { return k.kOutbox + id + "/" + kind }

// grantID derives the ID of a request's grant from the request's ID.
func grantID(reqID string) string { return "grt-" + strings.TrimPrefix(reqID, "req-") }

// requestOfGrant is the ID of the request whose grant is grantID, and
// whether grantID is one this package can have issued.
func requestOfGrant(grantID string) (string, bool) {
	reqID := "req-" + strings.TrimPrefix(grantID, "grt-")
	return reqID, strings.HasPrefix(grantID, "grt-") && validID(reqID)
}

func newRequestID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return "req-" + u.String(), nil
}

func newPolicyID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "pol-" + hex.EncodeToString(b[:]), nil
}

// validID accepts the IDs this package can have issued: non-empty, one key
// level.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/")
}
