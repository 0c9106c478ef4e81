package notify

import (
	"fmt"
	"strings"
	"time"
)

// Kinds of event.
const (
	KindSubmitted  = "request.submitted"
	KindApproved   = "request.approved"
	KindDenied     = "request.denied"
	KindRevoked    = "request.revoked"
	KindExpired    = "request.expired"
	KindUsedUp     = "request.used_up" // the last use a grant allowed was spent
	KindBreakGlass = "request.break_glass"
)

// kinds lists every kind of event, in the order of a request's life.
var kinds = []string{KindSubmitted, KindApproved, KindDenied, KindRevoked, KindExpired, KindUsedUp, KindBreakGlass}

// Event is something that happened to an access request. Webhooks receive
// it as the "event" member of their JSON body, with these member names.
type Event struct {
	// ID names the change: the same change always carries the same ID, so
	// that a receiver can drop a delivery it has already had (a delivery
	// may be repeated when a replica stops before it could record that it
	// was made). Notify and Deliver set an empty ID to the request ID and
	// the kind, "req-.../request.expired": each kind happens to a request at
	// most once.
	ID             string `json:"id"`
	Kind           string `json:"kind"` // KindSubmitted, KindApproved, ...
	RequestID      string `json:"request_id"`
	Requester      string `json:"requester"`
	RequesterEmail string `json:"requester_email,omitempty"`
	Scope          string `json:"scope"`  // task, role or rolegroup
	Target         string `json:"target"` // for example Exchange\New-MoveRequest
	// Constraint narrows the grant: "namespace=prod"; "" for none.
	Constraint string    `json:"constraint,omitempty"`
	Reason     string    `json:"reason"`
	Approvers  string    `json:"approvers,omitempty"` // the approver group
	By         string    `json:"by,omitempty"`        // who decided
	Comment    string    `json:"comment,omitempty"`
	Status     string    `json:"status"`
	GrantEnd   time.Time `json:"grant_end,omitzero"`
	At         time.Time `json:"at"`
	DecisionID string    `json:"decision_id,omitempty"` // the audit record id
	TraceID    string    `json:"trace_id,omitempty"`
}

// withID returns e with its ID set: the given one, else the request ID and
// the kind.
func withID(e Event) Event {
	if e.ID == "" {
		e.ID = e.RequestID + "/" + e.Kind
	}
	return e
}

// oneLine makes s safe for a header or a single line of text: control
// characters (line breaks included) become spaces, and runs of spaces one.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func orUnknown(s string) string {
	if s = oneLine(s); s == "" {
		return "(unknown)"
	}
	return s
}

// label is the word that names the kind in subjects and webhook text.
func label(kind string) string {
	if kind == KindBreakGlass {
		return "BREAK-GLASS"
	}
	return oneLine(strings.TrimPrefix(kind, "request."))
}

// what names what the request is for: the task itself, or "role X".
func what(e Event) string {
	t := orUnknown(e.Target)
	if c := oneLine(e.Constraint); c != "" {
		t += " (" + c + ")"
	}
	switch s := oneLine(e.Scope); s {
	case "", "task":
		return t
	case "rolegroup":
		return "role group " + t
	default:
		return s + " " + t
	}
}

// headline is the mail subject and the start of the webhook text, such as
// `[elevate] approved: Exchange\New-MoveRequest for bob (req-1)`.
func headline(e Event) string {
	return fmt.Sprintf("[elevate] %s: %s for %s (%s)", label(e.Kind), what(e), orUnknown(e.Requester), orUnknown(e.RequestID))
}

// slackText is the one-line webhook text, escaped as Slack's mrkdwn asks
// (&, < and > as entities).
func slackText(e Event) string {
	var b strings.Builder
	b.WriteString(headline(e))
	switch e.Kind {
	case KindSubmitted:
		if g := oneLine(e.Approvers); g != "" {
			b.WriteString(", approvers: " + g)
		}
		if r := oneLine(e.Reason); r != "" {
			fmt.Fprintf(&b, ", reason: %q", r)
		}
	case KindBreakGlass:
		if r := oneLine(e.Reason); r != "" {
			fmt.Fprintf(&b, ", reason: %q", r)
		}
	default:
		if by := oneLine(e.By); by != "" {
			b.WriteString(" by " + by)
		}
		if c := oneLine(e.Comment); c != "" {
			fmt.Fprintf(&b, ": %q", c)
		}
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(b.String())
}

// summary is the first sentence of a mail body.
func summary(e Event) string {
	who, subject, id := orUnknown(e.Requester), what(e), orUnknown(e.RequestID)
	by := ""
	if b := oneLine(e.By); b != "" {
		by = " by " + b
	}
	switch e.Kind {
	case KindSubmitted:
		group := oneLine(e.Approvers)
		if group == "" {
			group = "an approver"
		}
		return fmt.Sprintf("%s asks for %s and needs an approval from %s (request %s).", who, subject, group, id)
	case KindApproved:
		return fmt.Sprintf("Request %s of %s for %s was approved%s.", id, who, subject, by)
	case KindDenied:
		return fmt.Sprintf("Request %s of %s for %s was denied%s.", id, who, subject, by)
	case KindRevoked:
		return fmt.Sprintf("The grant of request %s (%s for %s) was revoked%s.", id, who, subject, by)
	case KindExpired:
		return fmt.Sprintf("Request %s of %s for %s has expired.", id, who, subject)
	case KindUsedUp:
		return fmt.Sprintf("The grant of request %s (%s for %s) is used up: every call it allowed has been made.", id, who, subject)
	case KindBreakGlass:
		return fmt.Sprintf("BREAK-GLASS: %s took %s without approval (request %s). Review it now.", who, subject, id)
	default:
		return fmt.Sprintf("Request %s of %s for %s: %s.", id, who, subject, oneLine(e.Kind))
	}
}

func stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// mailBody is the plain-text body of a mail about e.
func mailBody(e Event) string {
	var b strings.Builder
	b.WriteString(summary(e) + "\n\n")
	field := func(name, value string) {
		if value = oneLine(value); value != "" {
			fmt.Fprintf(&b, "%-12s%s\n", name+":", value)
		}
	}
	requester := oneLine(e.Requester)
	if m := oneLine(e.RequesterEmail); m != "" {
		requester += " <" + m + ">"
	}
	field("Request", e.RequestID)
	field("Event", e.Kind)
	field("Requester", requester)
	field("Scope", e.Scope)
	field("Target", e.Target)
	field("Only where", e.Constraint)
	field("Reason", e.Reason)
	field("Approvers", e.Approvers)
	field("Decided by", e.By)
	field("Comment", e.Comment)
	field("Status", e.Status)
	if !e.GrantEnd.IsZero() {
		field("Grant ends", stamp(e.GrantEnd))
	}
	if !e.At.IsZero() {
		field("At", stamp(e.At))
	}
	field("Decision", e.DecisionID)
	field("Trace", e.TraceID)
	if id := oneLine(e.RequestID); e.Kind == KindSubmitted && id != "" {
		fmt.Fprintf(&b, "\nTo approve: elevate request approve %s --comment TEXT\nTo deny:    elevate request deny %s --comment TEXT\n", id, id)
	}
	return b.String()
}
