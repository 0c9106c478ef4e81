package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Every mutation is one compare-and-swap: update runs an attempt that reads
// what the decision needs and says what to write, and commits the writes
// only if none of the keys it read has changed since. When one has, another
// change committed in between, and the attempt runs again on the new state,
// rules and all.

// maxAttempts bounds the attempts of one mutation.
const maxAttempts = 64

// record is one key as read from etcd; rev 0 means absent.
type record struct {
	val   []byte
	rev   int64
	lease clientv3.LeaseID
}

func (r record) exists() bool { return r.rev != 0 }

// change is one attempt of a mutation: the comparisons that must hold when
// it commits (one per key it read), the operations it commits, and the
// lease it granted for a grant key, revoked when the attempt does not
// commit.
type change struct {
	s     *Store
	ctx   context.Context
	cmps  []clientv3.Cmp
	ops   []clientv3.Op
	lease clientv3.LeaseID
}

// read gets keys at one revision, and makes the change conditional on each
// of them being as read (an absent key still absent) when it commits.
func (c *change) read(keys ...string) ([]record, error) {
	recs, _, err := c.s.get(c.ctx, keys, "")
	if err != nil {
		return nil, err
	}
	c.guard(keys, recs)
	return recs, nil
}

// readCounting is read, and also counts the keys under prefix at the same
// revision. The count is not guarded: a change that relies on it must also
// read a key that every change of the count rewrites.
func (c *change) readCounting(prefix string, keys ...string) ([]record, int64, error) {
	recs, n, err := c.s.get(c.ctx, keys, prefix)
	if err != nil {
		return nil, 0, err
	}
	c.guard(keys, recs)
	return recs, n, nil
}

func (c *change) guard(keys []string, recs []record) {
	for i, k := range keys {
		c.cmps = append(c.cmps, clientv3.Compare(clientv3.ModRevision(k), "=", recs[i].rev))
	}
}

// loadRequest reads request id, as read does.
func (c *change) loadRequest(id string) (Request, record, error) {
	if !validID(id) {
		return Request{}, record{}, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	recs, err := c.read(c.s.requestKey(id))
	if err != nil {
		return Request{}, record{}, err
	}
	r, err := decodeRequest(id, recs[0])
	return r, recs[0], err
}

func (c *change) put(key, val string, opts ...clientv3.OpOption) {
	c.ops = append(c.ops, clientv3.OpPut(key, val, opts...))
}

func (c *change) del(key string) { c.ops = append(c.ops, clientv3.OpDelete(key)) }

// putNew puts v, encoded, at key, which must still be absent when the
// change commits.
func (c *change) putNew(key string, v any) error {
	c.cmps = append(c.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	return c.putJSON(key, v)
}

// putJSON puts v, encoded, at key.
func (c *change) putJSON(key string, v any, opts ...clientv3.OpOption) error {
	val, err := encode(v)
	if err != nil {
		return err
	}
	c.put(key, val, opts...)
	return nil
}

// update runs attempt until the change it describes commits, at most
// maxAttempts times, and returns the revision of the commit (0 when the
// change writes nothing). An error from
// attempt ends it. After maxAttempts attempts that lost to concurrent
// changes it gives up with an error wrapping ErrUnavailable that names
// what.
func (s *Store) update(ctx context.Context, what string, attempt func(c *change) error) (int64, error) {
	for range maxAttempts {
		ok, rev, err := s.try(ctx, attempt)
		if err != nil || ok {
			return rev, err
		}
	}
	return 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, what, errContention)
}

var errContention = errors.New("too many concurrent changes, try again")

// try runs attempt once and commits its change if what it read is
// unchanged. It reports whether the change committed, and its revision. A
// change that writes nothing is done at once, without a transaction, at
// revision 0.
func (s *Store) try(ctx context.Context, attempt func(c *change) error) (bool, int64, error) {
	c := &change{s: s, ctx: ctx, lease: clientv3.NoLease}
	if err := attempt(c); err != nil {
		s.dropLease(ctx, c.lease)
		return false, 0, err
	}
	if len(c.ops) == 0 {
		return true, 0, nil
	}
	resp, err := s.cli.Txn(ctx).If(c.cmps...).Then(c.ops...).Commit()
	if err != nil || !resp.Succeeded {
		s.dropLease(ctx, c.lease)
	}
	if err != nil {
		return false, 0, unavailable(err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// deleteIf deletes key if its mod revision is still rev.
func (s *Store) deleteIf(ctx context.Context, key string, rev int64) error {
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// dropLease revokes a lease granted for a transaction that did not commit,
// or for a grant key that is gone. Failure is harmless: the lease then
// expires by itself.
func (s *Store) dropLease(ctx context.Context, id clientv3.LeaseID) {
	if id == clientv3.NoLease {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, id)
}

// read gets keys in one round trip, at one revision, without guarding
// anything: for reads that change nothing.
func (s *Store) read(ctx context.Context, keys ...string) ([]record, error) {
	recs, _, err := s.get(ctx, keys, "")
	return recs, err
}

// get reads keys and, when countPrefix is set, the number of keys under it,
// in one round trip at one revision.
func (s *Store) get(ctx context.Context, keys []string, countPrefix string) ([]record, int64, error) {
	ops := make([]clientv3.Op, len(keys), len(keys)+1)
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	if countPrefix != "" {
		ops = append(ops, clientv3.OpGet(countPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, unavailable(err)
	}
	out := make([]record, len(keys))
	for i := range keys {
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			out[i] = record{val: kvs[0].Value, rev: kvs[0].ModRevision, lease: clientv3.LeaseID(kvs[0].Lease)}
		}
	}
	var n int64
	if countPrefix != "" {
		n = resp.Responses[len(keys)].GetResponseRange().GetCount()
	}
	return out, n, nil
}

// encode marshals a record. Only out-of-range times can fail, which is bad
// input.
func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return string(b), nil
}

func decode(val []byte, v any, what string) error {
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("%w: %s: damaged record: %w", ErrUnavailable, what, err)
	}
	return nil
}
