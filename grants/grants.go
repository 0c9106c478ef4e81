// Package grants keeps elevate's live access state in etcd: access control
// settings, approval policies, access requests and the grants they produce.
//
// A Store does three jobs. Its mutations (Submit, Approve, Deny, Revoke,
// BreakGlass, UseGrant, CreatePolicy, DeletePolicy, UpdateControl) each
// commit one etcd transaction guarded by the mod revisions of every record
// the decision read, so two concurrent decisions on one request cannot both
// win: the loser re-reads, re-checks the rules and usually finds the request
// is no longer pending. Its Run loop lists the state once at one revision and
// then follows a single watch, so that the proxied path reads grants,
// policies and control settings from memory (LiveGrants, Policies, Control)
// without an etcd round trip. And while Run runs, it takes part in sweeping
// (below).
//
// A mutation's answer carries the etcd revision it committed
// (Request.Revision, Policy.Revision, Control.Revision), and WaitRevision
// waits until the in-memory view has applied that revision: a caller that
// answers only then makes sure that its next call through the same Store
// reads its own write, from memory as from etcd.
//
// A grant is bounded twice: its key is attached to an etcd lease that outlives
// the grant's end by a small margin, and every read compares the grant's
// window with the clock, so a grant stops being live at its end even while
// the lease is still running.
//
// Time changes a request's status without a transaction: a pending request
// past its expiry and an approved one past its grant's end read as expired
// at once. The Stores sharing a prefix elect one leader, which writes these
// changes back (Sweep) from an index ordered by expiry time, frees the
// pending index entries and grant keys they held, and reports each change to
// Config.OnEvent once. With Config.Deliver set, each of these changes also
// leaves its event in an outbox in etcd, written in the same transaction,
// which the leader of the moment empties through Deliver: the event
// outlives the replica that wrote it.
//
// A grant capped at a number of uses (Policy.MaxUses) is used up by the
// transaction that spends its last use (UseGrant): its request becomes
// used_up, and its grant key stays, marked used up, until its lease ends,
// so that every replica's view can tell a used-up grant from none.
//
// # Keys
//
// All keys live under Config.Prefix (default "/elevate/"); values are JSON.
//
//	PREFIX control                                 Control (absent: access control disabled)
//	PREFIX policies/<policy id>                    Policy
//	PREFIX requests/<request id>                   Request
//	PREFIX grants/<grant id>                       Grant, attached to a lease
//	PREFIX pending/<requester>/<scope>/<target>    index of the one pending request per
//	                                               requester, scope and target
//	PREFIX expiries/<time>/<request id>            index of the requests by the time their
//	                                               status next changes by itself
//	PREFIX policy-targets/<scope>/<target>         index of the one policy per scope and
//	                                               target: its ID
//	PREFIX policies-count                          number of policies, rewritten by every
//	                                               creation and deletion
//	PREFIX leader/<lease id>                       the election of the sweeping leader
//	PREFIX outbox/<request id>/<event kind>        Event waiting for Config.Deliver
//
// In the pending and policy target indexes the requester and the target are
// path-escaped (url.PathEscape), so a "/" in either cannot add a key level.
//
// # Errors
//
// Every refusal wraps one of the exported sentinel errors; match them with
// errors.Is and errors.As. ErrForbidden is the parent of ErrSelfApproval,
// ErrNotApprover and ErrMFARequired; ErrConflict is the parent of
// ErrNotPending, ErrAlreadyApproved, ErrNotApproved (itself the parent of
// ErrUsedUp), ErrPolicyLimit, *DuplicateError and *PolicyExistsError.
// ErrUnavailable wraps failures of etcd itself.
package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config configures a Store. The zero value of every field but Client
// selects the documented default. The fields with a yaml key are the
// requests section of elevate's configuration file; Prefix is its
// etcd.prefix.
type Config struct {
	// Client is the etcd client the Store uses. Required.
	Client *clientv3.Client `yaml:"-"`
	// Prefix is the key prefix of all state. Default "/elevate/"; it must
	// start and end with "/".
	Prefix string `yaml:"-"`
	// Now is the clock used for every rule and for Fresh. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// DefaultDuration is the grant duration of a request that asks for none.
	// Default 4h.
	DefaultDuration time.Duration `yaml:"default_duration"`
	// MaxDuration caps every grant; an approval policy may set a lower cap.
	// Default 24h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// PendingTTL is how long a request may stay undecided before it
	// expires. Default 24h.
	PendingTTL time.Duration `yaml:"pending_ttl"`
	// StaleAfter bounds how long ago the in-memory view may have last been
	// confirmed against etcd for Fresh to report true. The view is probed
	// every StaleAfter/3. Default 3s; at least 30ms.
	StaleAfter time.Duration `yaml:"-"`
	// OnState, when set, is called after the first sync, after every re-list
	// and after every change to control settings or policies, with the new
	// state. Calls are serial, from the goroutine running Run.
	OnState func(Control, []Policy) `yaml:"-"`
	// OnEvent, when set, is called once for every change of a request's
	// status (see Event), by the Store whose etcd transaction made the
	// change, right after it committed. Calls may come from several
	// goroutines at once and must not block.
	OnEvent func(Event) `yaml:"-"`
	// Deliver, when set, hands on the events of the expiries the sweep
	// writes back in a way that survives the replica that wrote them: each
	// such expiry commits together with an outbox entry holding its event,
	// and the leader calls Deliver with the event until it returns nil, then
	// removes the entry. A leader that stops leaves its undelivered entries
	// to the next one, so an event is never lost, and may be delivered
	// twice (a leader that stopped after Deliver succeeded but before the
	// entry was removed). OnEvent still hears of each such expiry once, with
	// Event.Outbox set. Calls may come from several goroutines at once; ctx
	// ends at the latest a second after the leader's term.
	Deliver func(ctx context.Context, e Event) error `yaml:"-"`
	// SweepInterval is how often the leader among the Stores sharing
	// Prefix writes back the requests that have expired. Default 1s; at
	// least 10ms.
	SweepInterval time.Duration `yaml:"-"`
	// ElectionTTL is the TTL of the lease that holds a Store's leadership:
	// a leader that vanishes without resigning is replaced after about this
	// long. Default 5s; at least 1s; rounded up to whole seconds.
	ElectionTTL time.Duration `yaml:"-"`
	// MaxPolicies caps the number of approval policies. Default 0: no cap.
	MaxPolicies int `yaml:"max_policies"`
	// BreakGlassDuration is the grant duration of a break-glass request that
	// asks for none. Default 1h, or BreakGlassMax when that is lower.
	BreakGlassDuration time.Duration `yaml:"break_glass_duration"`
	// BreakGlassMax caps break-glass grants. Default 4h, or MaxDuration when
	// that is lower; at most MaxDuration.
	BreakGlassMax time.Duration `yaml:"break_glass_max"`
	// BreakGlassReviewers is the approver group of break-glass requests:
	// it is notified and, besides the requester, may revoke the grant.
	// Optional: the default approver group of the control settings when
	// empty.
	BreakGlassReviewers string `yaml:"-"`
}

// Defaults applied by Validate.
const (
	DefaultPrefix          = "/elevate/"
	DefaultDefaultDuration = 4 * time.Hour
	DefaultMaxDuration     = 24 * time.Hour
	DefaultPendingTTL      = 24 * time.Hour
	DefaultStaleAfter      = 3 * time.Second
	DefaultSweepInterval   = time.Second
	DefaultElectionTTL     = 5 * time.Second
	DefaultBreakGlass      = time.Hour
	DefaultBreakGlassMax   = 4 * time.Hour

	minStaleAfter    = 30 * time.Millisecond
	minSweepInterval = 10 * time.Millisecond
	minElectionTTL   = time.Second
)

// Validate fills in defaults and checks the settings; New also checks the
// wiring (Client). Its messages name the offending key as elevate's
// configuration file does, for example `requests.max_duration: must not be
// negative` or `etcd.prefix: must start with "/"`; the settings that file
// does not hold are named grants.*.
func (c *Config) Validate() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return errors.New(`etcd.prefix: must start with "/"`)
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		return errors.New(`etcd.prefix: must end with "/"`)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"requests.default_duration", &c.DefaultDuration, DefaultDefaultDuration},
		{"requests.max_duration", &c.MaxDuration, DefaultMaxDuration},
		{"requests.pending_ttl", &c.PendingTTL, DefaultPendingTTL},
		{"grants.stale_after", &c.StaleAfter, DefaultStaleAfter},
		{"grants.sweep_interval", &c.SweepInterval, DefaultSweepInterval},
		{"grants.election_ttl", &c.ElectionTTL, DefaultElectionTTL},
	} {
		if *d.v < 0 {
			return fmt.Errorf("%s: must not be negative, got %s", d.key, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.DefaultDuration > c.MaxDuration {
		return fmt.Errorf("requests.default_duration: %s exceeds requests.max_duration (%s)", c.DefaultDuration, c.MaxDuration)
	}
	if c.StaleAfter < minStaleAfter {
		return fmt.Errorf("grants.stale_after: must be at least %s, got %s", minStaleAfter, c.StaleAfter)
	}
	if c.SweepInterval < minSweepInterval {
		return fmt.Errorf("grants.sweep_interval: must be at least %s, got %s", minSweepInterval, c.SweepInterval)
	}
	if c.ElectionTTL < minElectionTTL {
		return fmt.Errorf("grants.election_ttl: must be at least %s, got %s", minElectionTTL, c.ElectionTTL)
	}
	if c.MaxPolicies < 0 {
		return fmt.Errorf("requests.max_policies: must not be negative, got %d", c.MaxPolicies)
	}
	switch {
	case c.BreakGlassMax < 0:
		return fmt.Errorf("requests.break_glass_max: must not be negative, got %s", c.BreakGlassMax)
	case c.BreakGlassMax == 0:
		c.BreakGlassMax = min(DefaultBreakGlassMax, c.MaxDuration)
	case c.BreakGlassMax > c.MaxDuration:
		return fmt.Errorf("requests.break_glass_max: %s exceeds requests.max_duration (%s)", c.BreakGlassMax, c.MaxDuration)
	}
	switch {
	case c.BreakGlassDuration < 0:
		return fmt.Errorf("requests.break_glass_duration: must not be negative, got %s", c.BreakGlassDuration)
	case c.BreakGlassDuration == 0:
		c.BreakGlassDuration = min(DefaultBreakGlass, c.BreakGlassMax)
	case c.BreakGlassDuration > c.BreakGlassMax:
		return fmt.Errorf("requests.break_glass_duration: %s exceeds requests.break_glass_max (%s)", c.BreakGlassDuration, c.BreakGlassMax)
	}
	c.BreakGlassReviewers = strings.TrimSpace(c.BreakGlassReviewers)
	return nil
}

// Scope says what an approval policy or a request is about.
type Scope string

// Scopes.
const (
	ScopeTask      Scope = "task"
	ScopeRole      Scope = "role"
	ScopeRoleGroup Scope = "rolegroup"
)

func (s Scope) valid() bool {
	return s == ScopeTask || s == ScopeRole || s == ScopeRoleGroup
}

// Actor is an authenticated caller.
type Actor struct {
	Subject string
	Groups  []string
	MFA     bool
	// Email is the actor's address from their token, if any; a request
	// keeps its requester's for notifications.
	Email string
}

func (a Actor) inGroup(group string) bool {
	return group != "" && slices.Contains(a.Groups, group)
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "4h0m0s".
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "90m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"4h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Sentinel errors. Each refusal wraps exactly one of them.
var (
	// ErrInvalid reports bad input; the message names the field.
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound reports an unknown request or policy.
	ErrNotFound = errors.New("not found")
	// ErrConflict is the parent of the refusals caused by the state of a
	// request.
	ErrConflict = errors.New("conflict")
	// ErrForbidden is the parent of the refusals caused by who asks.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable wraps failures of etcd and records that cannot be read.
	ErrUnavailable = errors.New("access state unavailable")

	// ErrNotPending: the request is no longer pending (decided or expired).
	ErrNotPending error = &kindError{"request is not pending", ErrConflict}
	// ErrAlreadyApproved: this approver has already approved the request.
	ErrAlreadyApproved error = &kindError{"already approved by this approver", ErrConflict}
	// ErrNotApproved: the request has no grant that could be revoked or
	// used.
	ErrNotApproved error = &kindError{"request is not approved or its grant has ended", ErrConflict}
	// ErrUsedUp: the grant's uses are all spent. It wraps ErrNotApproved.
	ErrUsedUp error = &kindError{"the grant has no uses left", ErrNotApproved}
	// ErrPolicyLimit: Config.MaxPolicies approval policies exist already.
	ErrPolicyLimit error = &kindError{"too many approval policies", ErrConflict}
	// ErrSelfApproval: a requester may not decide their own request.
	ErrSelfApproval error = &kindError{"a requester cannot decide their own request", ErrForbidden}
	// ErrNotApprover: the caller is not in the request's approver group.
	ErrNotApprover error = &kindError{"not a member of the approver group", ErrForbidden}
	// ErrMFARequired: the approval policy requires multi-factor
	// authentication of approvers (RequireMFA) or of the requester
	// (RequireRequesterMFA).
	ErrMFARequired error = &kindError{"the approval policy requires multi-factor authentication (MFA: the token's amr must include mfa)", ErrForbidden}
)

// kindError is a sentinel error with a parent sentinel.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// DuplicateError refuses a second pending request for the same requester,
// scope and target. It wraps ErrConflict.
type DuplicateError struct {
	// ExistingID is the pending request already there.
	ExistingID string
}

func (e *DuplicateError) Error() string {
	return "a pending request for this target already exists: " + e.ExistingID
}

// Unwrap returns ErrConflict.
func (e *DuplicateError) Unwrap() error { return ErrConflict }

// PolicyExistsError refuses a second approval policy for the same scope and
// target. It wraps ErrConflict.
type PolicyExistsError struct {
	// ExistingID is the policy already there.
	ExistingID string
}

func (e *PolicyExistsError) Error() string {
	return "an approval policy for this target already exists: " + e.ExistingID
}

// Unwrap returns ErrConflict.
func (e *PolicyExistsError) Unwrap() error { return ErrConflict }

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
