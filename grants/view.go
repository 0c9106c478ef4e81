package grants

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// The in-memory view: what Run lists and watches, read by the proxied path
// without an etcd round trip.

// LiveGrants returns the grants of subject that are live at now, that is
// NotBefore <= now < ExpiresAt, from the in-memory view. Its cost is linear in
// the grants of that subject; it allocates only the result (nil when there is
// none). The Approvers slices are shared with the view and must not be
// modified.
func (s *Store) LiveGrants(subject string, now time.Time) []Grant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	gs := s.st.bySubject[subject]
	n := 0
	for i := range gs {
		if gs[i].liveAt(now) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Grant, 0, n)
	for i := range gs {
		if gs[i].liveAt(now) {
			out = append(out, gs[i])
		}
	}
	return out
}

// UsedUpGrants returns the grants of subject whose window includes now but
// whose uses are all spent (Grant.UsedUp), from the in-memory view: what
// LiveGrants leaves out only because it is used up. It suits the refusal of
// a call, to say why, rather than every call.
func (s *Store) UsedUpGrants(subject string, now time.Time) []Grant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Grant
	for _, g := range s.st.bySubject[subject] {
		if g.within(now) && g.UsedUp() {
			out = append(out, g)
		}
	}
	return out
}

// Control returns the control settings in the view; before the first sync,
// and while the control key is absent, that is the zero Control (disabled).
// A control record that cannot be decoded reads as enabled with no default
// approvers, and makes Fresh false.
func (s *Store) Control() Control {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.st.control
	c.SystemAccounts = slices.Clone(c.SystemAccounts)
	return c
}

// Policies returns the approval policies in the view, sorted by ID.
func (s *Store) Policies() []Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.st.sorted)
}

// Counts returns the number of grants live now and of requests pending now,
// from the view. It scans the view, so it suits metrics rather than the
// proxied path.
func (s *Store) Counts() (liveGrants, pendingRequests int) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, gs := range s.st.bySubject {
		for i := range gs {
			if gs[i].liveAt(now) {
				liveGrants++
			}
		}
	}
	for _, exp := range s.st.pending {
		if now.Before(exp) {
			pendingRequests++
		}
	}
	return liveGrants, pendingRequests
}

// state is the in-memory view.
type state struct {
	control   Control
	policies  map[string]Policy
	sorted    []Policy
	bySubject map[string][]Grant
	grantSub  map[string]string    // grant ID -> subject
	pending   map[string]time.Time // pending index key -> expiry of the request
	bad       map[string]struct{}  // keys whose value could not be decoded
}

func (s *Store) newState() *state {
	return &state{
		policies:  map[string]Policy{},
		bySubject: map[string][]Grant{},
		grantSub:  map[string]string{},
		pending:   map[string]time.Time{},
		bad:       map[string]struct{}{},
	}
}

// copyState returns copies of the control settings and the sorted policies.
func (st *state) copyState() (Control, []Policy) {
	c := st.control
	c.SystemAccounts = slices.Clone(c.SystemAccounts)
	return c, slices.Clone(st.sorted)
}

func (st *state) sortPolicies() {
	st.sorted = st.sorted[:0:0]
	for _, p := range st.policies {
		st.sorted = append(st.sorted, p)
	}
	slices.SortFunc(st.sorted, func(a, b Policy) int { return strings.Compare(a.ID, b.ID) })
}

func (st *state) removeGrant(id string) {
	sub, ok := st.grantSub[id]
	if !ok {
		return
	}
	delete(st.grantSub, id)
	gs := slices.DeleteFunc(st.bySubject[sub], func(g Grant) bool { return g.ID == id })
	if len(gs) == 0 {
		delete(st.bySubject, sub)
		return
	}
	st.bySubject[sub] = gs
}

func (st *state) addGrant(g Grant) {
	st.grantSub[g.ID] = g.Subject
	st.bySubject[g.Subject] = append(st.bySubject[g.Subject], g)
}

// apply records one key's new value (or its deletion) in st and reports
// whether the control settings or the policies changed.
func (s *Store) apply(st *state, key string, val []byte, modRev int64, deleted bool) bool {
	delete(st.bad, key)
	switch {
	case key == s.kControl:
		c := Control{}
		if !deleted {
			var err error
			if c, err = decodeControl(val); err != nil {
				st.bad[key] = struct{}{}
			}
			c.Revision = modRev
		}
		st.control = c
		return true
	case strings.HasPrefix(key, s.kPolicies):
		id := key[len(s.kPolicies):]
		delete(st.policies, id)
		if !deleted {
			var p Policy
			if err := json.Unmarshal(val, &p); err != nil || p.ID != id {
				st.bad[key] = struct{}{}
			} else {
				p.Revision = modRev
				st.policies[id] = p
			}
		}
		return true
	case strings.HasPrefix(key, s.kGrants):
		id := key[len(s.kGrants):]
		st.removeGrant(id)
		if !deleted {
			var g Grant
			if err := json.Unmarshal(val, &g); err != nil || g.ID != id || g.Subject == "" {
				st.bad[key] = struct{}{}
			} else {
				st.addGrant(g)
			}
		}
	case strings.HasPrefix(key, s.kPending):
		delete(st.pending, key)
		if !deleted {
			var e pendingEntry
			if err := json.Unmarshal(val, &e); err != nil {
				st.bad[key] = struct{}{}
			} else {
				st.pending[key] = e.ExpiresAt
			}
		}
	}
	return false
}
