package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Control holds the organisation-wide access control settings.
type Control struct {
	// Enabled gates the tasks covered by an approval policy.
	Enabled bool `json:"enabled"`
	// DefaultApprovers is the approver group of policies that name none.
	DefaultApprovers string `json:"default_approvers"`
	// SystemAccounts are exempt from approval.
	SystemAccounts []string `json:"system_accounts"`
	// Revision is the etcd mod revision of the settings, 0 when never set;
	// in the answer of UpdateControl, the revision of the transaction that
	// changed them. Store.WaitRevision waits for the view to have it.
	Revision int64 `json:"-"`
}

// ControlPatch changes the control settings whose fields are set and leaves
// the others alone.
type ControlPatch struct {
	Enabled          *bool     `json:"enabled,omitempty"`
	DefaultApprovers *string   `json:"default_approvers,omitempty"`
	SystemAccounts   *[]string `json:"system_accounts,omitempty"`
}

// accounts returns the system accounts p sets, trimmed; nil when it sets
// none.
func (p ControlPatch) accounts() ([]string, error) {
	if p.SystemAccounts == nil {
		return nil, nil
	}
	out := make([]string, 0, len(*p.SystemAccounts))
	for i, a := range *p.SystemAccounts {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, invalid("system_accounts", "entry %d is empty", i)
		}
		out = append(out, a)
	}
	return out, nil
}

// apply returns c changed by p; accounts are p's, as accounts returned them.
func (p ControlPatch) apply(c Control, accounts []string) Control {
	c.SystemAccounts = append([]string(nil), c.SystemAccounts...)
	if p.Enabled != nil {
		c.Enabled = *p.Enabled
	}
	if p.DefaultApprovers != nil {
		c.DefaultApprovers = strings.TrimSpace(*p.DefaultApprovers)
	}
	if p.SystemAccounts != nil {
		c.SystemAccounts = accounts
	}
	return c
}

// UpdateControl changes the control settings named by p and leaves the
// others as they are. An absent control record reads as the zero Control
// (disabled). It returns the settings before and after the change.
func (s *Store) UpdateControl(ctx context.Context, p ControlPatch) (before, after Control, err error) {
	accounts, err := p.accounts()
	if err != nil {
		return Control{}, Control{}, err
	}
	rev, err := s.update(ctx, "update control", func(c *change) error {
		recs, err := c.read(s.kControl)
		if err != nil {
			return err
		}
		before = Control{}
		if recs[0].exists() {
			before, _ = decodeControl(recs[0].val)
			before.Revision = recs[0].rev
		}
		after = p.apply(before, accounts)
		return c.putJSON(s.kControl, after)
	})
	if err != nil {
		return Control{}, Control{}, err
	}
	after.Revision = rev
	return before, after, nil
}

// decodeControl decodes a control record. One that cannot be decoded yields
// an enabled Control, so that a damaged record gates rather than opens.
func decodeControl(val []byte) (Control, error) {
	var c Control
	if err := json.Unmarshal(val, &c); err != nil {
		return Control{Enabled: true}, fmt.Errorf("%w: control record: %w", ErrUnavailable, err)
	}
	return c, nil
}
