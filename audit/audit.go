package audit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxBytes is the size beyond which the log is rotated when
// Config.MaxBytes is zero.
const DefaultMaxBytes int64 = 64 << 20

// Genesis is the Prev of the first record of a log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Kinds of record.
const (
	KindCall      = "call"      // a decision on the proxied path
	KindLifecycle = "lifecycle" // a change to requests, grants, policies or control settings
)

var (
	// ErrTampered is wrapped by every error that reports a record or file
	// that is not as it was written. Such errors are *TamperError.
	ErrTampered = errors.New("audit: log tampered with")
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("audit: log closed")
	// ErrUnavailable is wrapped by errors that mean a record could not be made
	// durable. Callers refuse the call they were about to let through.
	ErrUnavailable = errors.New("audit: log unavailable")
	// ErrInvalid is wrapped by errors about a record or filter that this
	// package refuses to write or run.
	ErrInvalid = errors.New("audit: invalid input")
)

// Config configures a Log. The fields with a yaml key are the audit
// section of elevate's configuration file.
type Config struct {
	// Path of the log file, for example DATA_DIR/audit.log. Required. Missing
	// parent directories are created with mode 0700, the file with 0600.
	Path string `yaml:"path"`
	// MaxBytes rotates the file when appending a record would take it beyond
	// this size. Default DefaultMaxBytes (64 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// Now fills Record.Time when the caller leaves it zero. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// OnFsync, when set, is told how long each successful fsync of the log
	// took (for a latency histogram). It runs on the writer goroutine and
	// must return quickly.
	OnFsync func(time.Duration) `yaml:"-"`
	// AppendSyncDelay bounds how long a record written with Append waits
	// for an fsync when no Write comes to carry it. Default 100 ms.
	AppendSyncDelay time.Duration `yaml:"-"`
	// BodyKeyFile names a file holding the key of body digests
	// (Record.BodyHMAC, see Log.BodyHMAC): at least 32 characters,
	// surrounding white space trimmed, for example the output of
	// `openssl rand -hex 32`. Or
	BodyKeyFile string `yaml:"body_key_file"`
	// BodyKeyEnv names an environment variable holding it. Default: no
	// key, and records carry no body digest (elevate serve --dev keeps one
	// in its data directory).
	BodyKeyEnv string `yaml:"body_key_env"`
}

// MinBodyKeyBytes is the shortest body key accepted.
const MinBodyKeyBytes = 32

// Validate reports the first invalid setting, naming its key. It reads the
// body key, as Open does.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("audit.path: required")
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("audit.max_bytes: must not be negative, got %d", c.MaxBytes)
	}
	if c.AppendSyncDelay < 0 {
		return fmt.Errorf("audit: append sync delay must not be negative, got %s", c.AppendSyncDelay)
	}
	if c.BodyKeyFile != "" && c.BodyKeyEnv != "" {
		return errors.New("audit.body_key_file, audit.body_key_env: set one or the other")
	}
	_, err := c.bodyKey()
	return err
}

// bodyKey reads the key of body digests; nil when none is configured.
func (c Config) bodyKey() ([]byte, error) {
	var key, from string
	switch {
	case c.BodyKeyFile != "":
		b, err := os.ReadFile(c.BodyKeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.body_key_file: %w", err)
		}
		key, from = string(b), "audit.body_key_file: "+c.BodyKeyFile
	case c.BodyKeyEnv != "":
		key, from = os.Getenv(c.BodyKeyEnv), "audit.body_key_env: "+c.BodyKeyEnv
	default:
		return nil, nil
	}
	key = strings.TrimSpace(key)
	if len(key) < MinBodyKeyBytes {
		return nil, fmt.Errorf("%s: the key must hold at least %d characters, it holds %d", from, MinBodyKeyBytes, len(key))
	}
	return []byte(key), nil
}

// CreateBodyKey writes a new random body key (64 hex digits, mode 0600)
// to path unless a file is there already, for Config.BodyKeyFile.
func CreateBodyKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // another process made it first
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(b) + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AppendSyncDelay == 0 {
		c.AppendSyncDelay = 100 * time.Millisecond
	}
	return c
}

// Record is one audit record, one line of the log.
type Record struct {
	Seq        uint64          `json:"seq"`
	Time       time.Time       `json:"time"`
	ID         string          `json:"id"` // the decision id shown to users in refusals
	TraceID    string          `json:"trace_id,omitempty"`
	SpanID     string          `json:"span_id,omitempty"`
	Kind       string          `json:"kind"`  // KindCall or KindLifecycle
	Event      string          `json:"event"` // one of the Event constants: EventAllowed, ... for calls; EventRequestSubmitted, ... for lifecycle changes
	Subject    string          `json:"subject,omitempty"`
	Groups     []string        `json:"groups,omitempty"`
	Task       string          `json:"task,omitempty"`
	Upstream   string          `json:"upstream,omitempty"`
	Method     string          `json:"method,omitempty"`
	Host       string          `json:"host,omitempty"`
	Path       string          `json:"path,omitempty"`
	Query      string          `json:"query,omitempty"` // the raw query string as forwarded, the upstream's credential parameters removed
	Status     int             `json:"status,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	GrantID    string          `json:"grant_id,omitempty"`
	PolicyID   string          `json:"policy_id,omitempty"`
	Approvers  []string        `json:"approvers,omitempty"`
	Comment    string          `json:"comment,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	Ref        string          `json:"ref,omitempty"` // links an EventOutcome record to the decision it follows
	Bytes      int64           `json:"bytes,omitempty"`
	DurationMS float64         `json:"duration_ms,omitempty"`
	// Operations are the calls a judged body holds (a JSON-RPC request or
	// batch, a GraphQL document), each with its task, in the order sent.
	Operations []Operation `json:"operations,omitempty"`
	// BodyHMAC is the lowercase hex HMAC-SHA-256 of a judged body under
	// the log's body key (Config.BodyKeyFile): equal bodies have equal
	// digests, and the body itself is not kept. Empty without a key.
	BodyHMAC string `json:"body_hmac,omitempty"`
	// Fields are the body fields a route asks to record in clear, by name,
	// as JSON (for a JSON or form body; those of a JSON-RPC or GraphQL
	// call are in its Operation).
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	// Attributes are what the call's catalog reads from it beyond its
	// path, by name: for a Kubernetes API call its verb, group,
	// resource, subresource, namespace, name, dry_run and watch, and the
	// command of an exec. A grant's constraint is matched against them.
	Attributes map[string]string `json:"attributes,omitempty"`
	Prev       string            `json:"prev"` // Hash of the previous record, Genesis for the first
	Hash       string            `json:"hash"` // hex SHA-256 of the canonical bytes (see the package doc)
}

// Operation is one call of a judged body: a JSON-RPC method or a GraphQL
// top-level field, judged on its own.
type Operation struct {
	// Name is the JSON-RPC method ("aria2.shutdown") or the GraphQL
	// operation type and field ("mutation deleteUser").
	Name string `json:"name"`
	// Task is the task the call was judged as; empty for none.
	Task string `json:"task,omitempty"`
	// Outcome is the policy's verdict on this call: allow, deny or
	// grant_required.
	Outcome string `json:"outcome,omitempty"`
	// GrantID is the grant that allowed this call, if one did.
	GrantID string                     `json:"grant_id,omitempty"`
	Fields  map[string]json.RawMessage `json:"fields,omitempty"`
}

// Stats describes the writer for metrics.
type Stats struct {
	// QueueDepth is the number of records accepted by Write and not yet
	// answered.
	QueueDepth int
	// LastFsync is how long the most recent fsync took.
	LastFsync time.Duration
	// Seq is the Seq of the last durable record.
	Seq uint64
	// Fsyncs counts the successful fsyncs of the log file since Open.
	Fsyncs uint64
}

// Log appends hash-chained records to a file. It is safe for concurrent use.
type Log struct {
	cfg     Config
	bodyKey []byte       // nil: no body digests
	unlock  func() error // releases the lock that keeps other processes out

	mu      sync.Mutex // guards pending and closed
	pending []*request
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	// Owned by the writer goroutine. fileMu guards f, size and nextRot
	// against Query's snapshots; the writer takes it only to change them.
	fileMu  sync.RWMutex
	f       *os.File // nil after a failure until the next batch reopens it
	size    int64    // bytes of the current file written and valid
	nextRot int      // number of the next rotated file
	seq     uint64   // last written Seq
	hash    string   // last written Hash
	// The records written by Append since the last fsync: dirty is true
	// while there are any; synced, syncedSeq and syncedHash are the file
	// size and chain head that the last fsync made durable.
	dirty      bool
	synced     int64
	syncedSeq  uint64
	syncedHash string

	batch batchBuffers // the writer's, reused from batch to batch

	queued    atomic.Int64
	lastFsync atomic.Int64
	lastSeq   atomic.Uint64
	fsyncs    atomic.Uint64
}

// batchBuffers are the writer's working buffers, kept between batches up
// to a bound so that a burst does not pin its memory.
type batchBuffers struct {
	buf   []byte
	line  []byte
	group []*request
	recs  []Record
}

const keepBatchBytes = 1 << 20

func (b *batchBuffers) keep(buf []byte, group []*request, recs []Record) {
	clear(group[:cap(group)])
	clear(recs[:cap(recs)])
	if cap(buf) > keepBatchBytes {
		buf, group, recs = nil, nil, nil
	}
	b.buf, b.group, b.recs = buf[:0], group[:0], recs[:0]
}

type request struct {
	rec  Record
	lazy bool // written by Append: answered once written, synced later
	done chan result
}

type result struct {
	rec Record
	err error
}

// Open opens the log at cfg.Path, creating it if needed, and continues the
// chain from its last record (or from the last record of the newest rotated
// file when the current file is empty). Bytes after the last end of line,
// left by a crash during a write that no caller saw succeed, are cut off.
// Open fails with a *TamperError when that last record does not check out.
// Only one Log at a time may hold a path, across processes.
func Open(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	bodyKey, err := cfg.bodyKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	unlock, err := lockFile(cfg.Path + ".lock")
	if err != nil {
		return nil, err
	}
	l := &Log{
		cfg:     cfg,
		bodyKey: bodyKey,
		unlock:  unlock,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := l.load(); err != nil {
		if l.f != nil {
			_ = l.f.Close()
		}
		_ = unlock()
		return nil, err
	}
	l.synced, l.syncedSeq, l.syncedHash = l.size, l.seq, l.hash
	go l.run()
	return l, nil
}

// load opens the current file, repairs a torn tail and finds the chain head.
func (l *Log) load() error {
	path := l.cfg.Path
	rotated, err := rotatedFiles(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	l.nextRot = 1
	if len(rotated) > 0 {
		l.nextRot = rotated[len(rotated)-1].n + 1
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	l.f = f
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	size, err := repairTail(f)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, path, err)
	}
	l.size = size
	l.seq, l.hash = 0, Genesis
	if size > 0 {
		return l.loadHead(f, path, size)
	}
	for i := len(rotated) - 1; i >= 0; i-- {
		rf, err := os.Open(rotated[i].path)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		st, err := rf.Stat()
		if err == nil && st.Size() > 0 {
			err = l.loadHead(rf, rotated[i].path, st.Size())
			_ = rf.Close()
			return err
		}
		_ = rf.Close()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// loadHead takes the chain head from the last line of f, which holds size bytes.
func (l *Log) loadHead(f *os.File, path string, size int64) error {
	line, err := lastLine(f, size)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, path, err)
	}
	c, reason := checkLine(line)
	if reason == "" && c.Seq == 0 {
		reason = "seq must be at least 1"
	}
	if reason != "" {
		n, err := countLines(f, size)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, path, err)
		}
		return &TamperError{File: path, Line: n, Reason: "last record: " + reason}
	}
	l.seq, l.hash = c.Seq, c.Hash
	l.lastSeq.Store(c.Seq)
	return nil
}

// Write appends r to the log and returns once it is durable. It fills Time
// (when zero, from Config.Now), ID (when empty, a UUIDv7, which sorts by
// time), TraceID and SpanID (when TraceID is empty, from the span in ctx) and
// always sets Seq, Prev and Hash. Kind must be KindCall or KindLifecycle and
// Event must be set, else the error wraps ErrInvalid. When the record cannot
// be made durable the error wraps ErrUnavailable; when ctx ends while the
// record waits, Write returns an error wrapping ErrUnavailable and ctx.Err()
// and the record may still reach the log.
func (l *Log) Write(ctx context.Context, r Record) (Record, error) {
	return l.enqueue(ctx, r, false)
}

// Append writes r like Write, in order with every other record, but
// returns once r is written, before it is durable: the next fsync makes it
// so, that of the next Write or at most Config.AppendSyncDelay later. A
// crash of the process loses nothing Append returned; losing power may
// lose the records of that last interval. For records that follow one
// already made durable, such as the outcome of an allowed call.
func (l *Log) Append(ctx context.Context, r Record) (Record, error) {
	return l.enqueue(ctx, r, true)
}

func (l *Log) enqueue(ctx context.Context, r Record, lazy bool) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("audit: %w", err)
	}
	if r.Time.IsZero() {
		r.Time = l.cfg.Now()
	}
	r.Time = r.Time.Round(0).UTC()
	if r.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Record{}, fmt.Errorf("%w: record id: %w", ErrUnavailable, err)
		}
		r.ID = id.String()
	}
	if r.TraceID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.TraceID = sc.TraceID().String()
			if r.SpanID == "" {
				r.SpanID = sc.SpanID().String()
			}
		}
	}
	if err := check(r); err != nil {
		return Record{}, err
	}
	req := &request{rec: r, lazy: lazy, done: make(chan result, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Record{}, ErrClosed
	}
	l.pending = append(l.pending, req)
	l.queued.Add(1)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case res := <-req.done:
		return res.rec, res.err
	case <-ctx.Done():
		return Record{}, fmt.Errorf("%w: gave up waiting: %w", ErrUnavailable, ctx.Err())
	}
}

// BodyHMAC is the digest of a judged body for Record.BodyHMAC: the
// lowercase hex HMAC-SHA-256 of body under the configured body key, or ""
// when no key is configured. Digests compare only under the same key.
func (l *Log) BodyHMAC(body []byte) string {
	if l.bodyKey == nil {
		return ""
	}
	m := hmac.New(sha256.New, l.bodyKey)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// check refuses records that cannot or must not be written.
func check(r Record) error {
	if r.Kind != KindCall && r.Kind != KindLifecycle {
		return fmt.Errorf("%w: kind must be %q or %q, got %q", ErrInvalid, KindCall, KindLifecycle, r.Kind)
	}
	if r.Event == "" {
		return fmt.Errorf("%w: event is required", ErrInvalid)
	}
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: time %v is out of range", ErrInvalid, r.Time)
	}
	if len(r.Before) > 0 && !json.Valid(r.Before) {
		return fmt.Errorf("%w: before is not valid JSON", ErrInvalid)
	}
	if len(r.After) > 0 && !json.Valid(r.After) {
		return fmt.Errorf("%w: after is not valid JSON", ErrInvalid)
	}
	if err := validFields(r.Fields); err != nil {
		return err
	}
	for _, op := range r.Operations {
		if err := validFields(op.Fields); err != nil {
			return err
		}
	}
	return nil
}

func validFields(fields map[string]json.RawMessage) error {
	for k, v := range fields {
		if !json.Valid(v) {
			return fmt.Errorf("%w: field %q is not valid JSON", ErrInvalid, k)
		}
	}
	return nil
}

// Stats reports the writer's state for metrics.
func (l *Log) Stats() Stats {
	return Stats{
		QueueDepth: int(l.queued.Load()),
		LastFsync:  time.Duration(l.lastFsync.Load()),
		Seq:        l.lastSeq.Load(),
		Fsyncs:     l.fsyncs.Load(),
	}
}

// Close writes the records already accepted, then closes the file. Write and
// Query fail with ErrClosed afterwards, and so does a second Close.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f = nil
	}
	return errors.Join(err, l.unlock())
}

// run is the writer goroutine: it commits whatever is pending, one batch at
// a time, until Close.
func (l *Log) run() {
	defer close(l.done)
	var timer *time.Timer
	var due <-chan time.Time // set while records written by Append wait for an fsync
	for {
		select {
		case <-l.wake:
			l.commit(l.take())
		case <-due:
			due = nil
			l.syncDirty()
		case <-l.stop:
			l.commit(l.take())
			l.syncDirty()
			return
		}
		switch {
		case l.dirty && due == nil:
			timer = time.NewTimer(l.cfg.AppendSyncDelay)
			due = timer.C
		case !l.dirty && due != nil:
			timer.Stop()
			due = nil
		}
	}
}

// syncDirty makes the records written by Append durable.
func (l *Log) syncDirty() {
	if l.dirty {
		_ = l.append(nil, true, Record{})
	}
}

func (l *Log) take() []*request {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := l.pending
	l.pending = nil
	return batch
}

func (l *Log) answer(req *request, rec Record, err error) {
	l.queued.Add(-1)
	req.done <- result{rec: rec, err: err}
}

// commit chains, writes and syncs a batch, rotating between records when the
// file would grow too large. Records become durable in groups: each group is
// answered as soon as its fsync returns.
func (l *Log) commit(batch []*request) {
	if len(batch) == 0 {
		return
	}
	seq, prev := l.seq, l.hash
	buf, group, recs := l.batch.buf[:0], l.batch.group[:0], l.batch.recs[:0]
	defer func() { l.batch.keep(buf, group, recs) }()
	durable := false // some record of the group waits for its fsync
	fail := func(rest []*request, err error) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		for _, req := range group {
			l.answer(req, Record{}, err)
		}
		for _, req := range rest {
			l.answer(req, Record{}, err)
		}
	}
	// flush writes the group, syncing when one of its records or the
	// caller (before a rotation) needs it.
	flush := func(sync bool) error {
		if len(buf) == 0 && !(sync && l.dirty) {
			return nil
		}
		var last Record
		if len(recs) > 0 {
			last = recs[len(recs)-1]
		}
		if err := l.append(buf, sync || durable, last); err != nil {
			return err
		}
		for i, req := range group {
			l.answer(req, recs[i], nil)
		}
		buf, group, recs, durable = buf[:0], group[:0], recs[:0], false
		return nil
	}
	for i, req := range batch {
		rec := req.rec
		rec.Seq, rec.Prev = seq+1, prev
		line, hash, err := encode(l.batch.line[:0], rec)
		l.batch.line = line
		if err != nil {
			l.answer(req, Record{}, fmt.Errorf("%w: %w", ErrInvalid, err))
			continue
		}
		rec.Hash = hash
		if used := l.size + int64(len(buf)); used > 0 && used+int64(len(line)) > l.cfg.MaxBytes {
			if err := flush(true); err != nil {
				fail(batch[i:], err)
				return
			}
			if err := l.rotate(); err != nil {
				fail(batch[i:], err)
				return
			}
		}
		buf = append(buf, line...)
		group = append(group, req)
		recs = append(recs, rec)
		durable = durable || !req.lazy
		seq, prev = rec.Seq, hash
	}
	if err := flush(false); err != nil {
		fail(nil, err)
	}
}

// append writes b, whose last record is last, at the end of the current
// file and, when sync is set, syncs the file. A failed write cuts the file
// back to its last good size; a failed fsync cuts it back to what the last
// good fsync made durable, dropping records written by Append since then,
// and the chain continues from there. Either way the file is closed and
// the next call reopens it.
func (l *Log) append(b []byte, sync bool, last Record) error {
	if err := l.reopen(); err != nil {
		return err
	}
	var err error
	if len(b) > 0 {
		if _, err = l.f.Write(b); err != nil {
			l.drop(l.size)
			return fmt.Errorf("%s: %w", l.cfg.Path, err)
		}
		l.fileMu.Lock()
		l.size += int64(len(b))
		l.fileMu.Unlock()
		l.seq, l.hash = last.Seq, last.Hash
		l.lastSeq.Store(last.Seq)
		l.dirty = true
	}
	if !sync {
		return nil
	}
	start := time.Now()
	if err = syncData(l.f); err != nil {
		l.seq, l.hash = l.syncedSeq, l.syncedHash
		l.lastSeq.Store(l.syncedSeq)
		l.drop(l.synced)
		return fmt.Errorf("%s: %w", l.cfg.Path, err)
	}
	l.lastFsync.Store(int64(time.Since(start)))
	l.dirty, l.synced, l.syncedSeq, l.syncedHash = false, l.size, l.seq, l.hash
	l.fsyncs.Add(1)
	if l.cfg.OnFsync != nil {
		l.cfg.OnFsync(time.Duration(l.lastFsync.Load()))
	}
	return nil
}

// drop cuts the current file back to size bytes and closes it.
func (l *Log) drop(size int64) {
	_ = l.f.Truncate(size)
	_ = l.f.Sync()
	_ = l.f.Close()
	l.fileMu.Lock()
	l.f, l.size = nil, size
	l.fileMu.Unlock()
	l.dirty = size > l.synced
}

// reopen makes sure the current file is open and holds exactly the good
// bytes, cutting off what a failed write may have left.
func (l *Log) reopen() error {
	if l.f != nil {
		return nil
	}
	f, err := os.OpenFile(l.cfg.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		switch {
		case st.Size() < l.size:
			err = fmt.Errorf("%s: shrank from %d to %d bytes while open", l.cfg.Path, l.size, st.Size())
		case st.Size() > l.size:
			if err = f.Truncate(l.size); err == nil {
				err = f.Sync()
			}
		}
	}
	if err != nil {
		_ = f.Close()
		return err
	}
	l.fileMu.Lock()
	l.f = f
	l.fileMu.Unlock()
	return nil
}

// rotate renames the current file to PATH.N and starts an empty one.
func (l *Log) rotate() error {
	if err := l.reopen(); err != nil {
		return err
	}
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	target := fmt.Sprintf("%s.%d", l.cfg.Path, l.nextRot)
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate: %s already exists", target)
	}
	if err := os.Rename(l.cfg.Path, target); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	_ = l.f.Close()
	l.f, l.size, l.synced = nil, 0, 0
	l.nextRot++
	dir := filepath.Dir(l.cfg.Path)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	f, err := os.OpenFile(l.cfg.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	if err := syncDir(dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("rotate: %w", err)
	}
	l.f = f
	return nil
}
