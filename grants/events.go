package grants

import (
	"slices"
	"time"
)

// Kinds of Event.
const (
	// EventSubmitted: a request was stored (pending, or approved at once
	// under an "auto" policy, which is followed by EventApproved).
	EventSubmitted = "request.submitted"
	// EventApproved: a request got its last required approval.
	EventApproved = "request.approved"
	// EventDenied: a pending request was denied.
	EventDenied = "request.denied"
	// EventRevoked: an approved request's grant was revoked.
	EventRevoked = "request.revoked"
	// EventExpired: a pending request expired undecided, or an approved
	// request's grant ended.
	EventExpired = "request.expired"
	// EventUsedUp: the last use an approved request's grant allowed was
	// spent (Store.UseGrant).
	EventUsedUp = "request.used_up"
	// EventBreakGlass: a break-glass request was stored, approved at once.
	EventBreakGlass = "request.break_glass"
)

// Event reports a change of a request's status. Across all Stores sharing a
// prefix, each change is reported once, by the Store that committed it.
type Event struct {
	// Kind is one of the Event* constants.
	Kind string `json:"kind"`
	// Request is the request as the change left it.
	Request Request `json:"request"`
	// By is who made the change: the requester for a submission or a
	// break-glass request, AutoApprover for an automatic approval, the
	// approver, denier or revoker, and "" for an expiry or a grant used up.
	By string `json:"by,omitempty"`
	// Comment is the decision's comment, or for an expiry or a grant used
	// up what ended the request.
	Comment string `json:"comment,omitempty"`
	// At is when the change was made, by the clock of the Store that made
	// it.
	At time.Time `json:"at"`
	// Outbox marks, for OnEvent, an event that waits in the outbox for
	// Config.Deliver.
	Outbox bool `json:"-"`
}

// emit reports a committed change to Config.OnEvent.
func (s *Store) emit(kind string, r Request, by, comment string, at time.Time) {
	s.report(Event{Kind: kind, Request: r, By: by, Comment: comment, At: at})
}

// report hands a committed change to Config.OnEvent, with a request that
// shares nothing with the caller's.
func (s *Store) report(e Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	e.Request.Approvals = slices.Clone(e.Request.Approvals)
	s.cfg.OnEvent(e)
}
