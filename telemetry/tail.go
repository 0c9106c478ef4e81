package telemetry

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes that make a trace worth keeping whatever the sample ratio.
const (
	// GatedKey marks the span of a call that needed a grant (a bool).
	GatedKey = attribute.Key("elevate.gated")
	// DecisionKey holds the outcome of a call: "allowed", "denied",
	// "grant_required", "unauthenticated", "unavailable", "error", ...
	DecisionKey = attribute.Key("elevate.decision")
	// EventKey names a lifecycle event, such as "request.approved".
	EventKey = attribute.Key("elevate.event")
)

// Limits of the trace buffer that waits for each trace's local root.
const (
	// MaxBufferedTraces is the number of traces whose local root has not
	// ended yet that are held at once. When it is reached, the oldest is
	// settled early.
	MaxBufferedTraces = 10000
	// MaxSpansPerTrace is the number of ended spans held for one trace;
	// further spans of that trace are dropped, except its local roots.
	MaxSpansPerTrace = 256
	// TraceTimeout is how long a trace waits for its local root to end
	// before it is settled early.
	TraceTimeout = 2 * time.Minute
	// rememberedDecisions is the number of settled traces whose decision
	// is kept for spans that end after their root.
	rememberedDecisions = 16384
)

// numShards splits the buffer so that concurrent calls seldom wait for the
// same lock. A power of two.
const numShards = 16

// Reasons for spans lost by the trace buffer, as the "reason" attribute of
// the elevate.trace.spans.lost counter.
const (
	lostSpanCap    = "span_cap"   // more than MaxSpansPerTrace spans in one trace
	lostTraceCap   = "trace_cap"  // settled early because MaxBufferedTraces was reached
	lostUnfinished = "unfinished" // root did not end within TraceTimeout or before shutdown
)

// MustKeep reports whether s alone makes its trace worth exporting: it
// carries elevate.gated = true, an elevate.decision other than "allowed",
// any elevate.event, or an Error status.
func MustKeep(s sdktrace.ReadOnlySpan) bool {
	if s.Status().Code == codes.Error {
		return true
	}
	for _, kv := range s.Attributes() {
		switch kv.Key {
		case GatedKey:
			if kv.Value.Type() == attribute.BOOL && kv.Value.AsBool() {
				return true
			}
		case DecisionKey:
			if kv.Value.Type() != attribute.STRING || kv.Value.AsString() != "allowed" {
				return true
			}
		case EventKey:
			return true
		}
	}
	return false
}

// tailConfig sizes a tailSampler.
type tailConfig struct {
	ratio      float64
	maxTraces  int // buffered traces, across all shards
	maxSpans   int // buffered spans per trace
	maxDecided int // remembered decisions, across all shards
	timeout    time.Duration
	now        func() time.Time
}

// tailSampler is the only span processor of the tracer provider. It holds
// the ended spans of each trace until the trace's local root ends, then
// passes them all to next or drops them all. See the package doc.
type tailSampler struct {
	next     sdktrace.SpanProcessor
	all      bool   // ratio >= 1
	bound    uint64 // trace ids below it (as TraceIDRatioBased reads them) are kept
	maxSpans int
	timeout  time.Duration
	now      func() time.Time
	closed   atomic.Bool

	lostSpanCap, lostTraceCap, lostUnfinished atomic.Int64

	shards [numShards]shard
}

// entry states.
const (
	statePending uint8 = iota
	stateKept
	stateDropped
)

// entry is one trace known to a shard: pending (waiting for its local
// roots) or decided (remembered for late spans).
type entry struct {
	id    trace.TraceID
	state uint8
	// keep is set once a reason to keep the trace was seen: a span for
	// which MustKeep holds, or a local root under a remote sampled parent.
	keep bool
	// roots counts local roots started and not yet ended.
	roots int32
	// root is the first local root, looked at when the trace is settled
	// before it ends.
	root    sdktrace.ReadWriteSpan
	created time.Time
	spans   []sdktrace.ReadOnlySpan

	prev, next *entry
}

// list is an intrusive FIFO of entries.
type list struct {
	head, tail *entry
	n          int
}

func (l *list) push(e *entry) {
	e.prev, e.next = l.tail, nil
	if l.tail == nil {
		l.head = e
	} else {
		l.tail.next = e
	}
	l.tail = e
	l.n++
}

func (l *list) remove(e *entry) {
	if e.prev == nil {
		l.head = e.next
	} else {
		e.prev.next = e.next
	}
	if e.next == nil {
		l.tail = e.prev
	} else {
		e.next.prev = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
}

// shard holds the traces whose id falls to it.
type shard struct {
	mu         sync.Mutex
	traces     map[trace.TraceID]*entry
	pending    list // oldest first
	decided    list // oldest first
	maxPending int
	maxDecided int
	free       []*entry

	_ [64]byte // keep neighbouring shards' locks off one cache line
}

// maxFree bounds each shard's list of entries ready for reuse.
const maxFree = 64

// newTailSampler returns a tailSampler that hands kept spans to next.
func newTailSampler(next sdktrace.SpanProcessor, c tailConfig) *tailSampler {
	t := &tailSampler{
		next:     next,
		all:      c.ratio >= 1,
		maxSpans: c.maxSpans,
		timeout:  c.timeout,
		now:      c.now,
	}
	if c.ratio > 0 && c.ratio < 1 {
		t.bound = uint64(c.ratio * (1 << 63))
	}
	perShard := func(n int) int { return max(1, (n+numShards-1)/numShards) }
	for i := range t.shards {
		sh := &t.shards[i]
		sh.traces = make(map[trace.TraceID]*entry)
		sh.maxPending = perShard(c.maxTraces)
		sh.maxDecided = perShard(c.maxDecided)
	}
	return t
}

// ratioKeeps reports whether the sample ratio alone keeps the trace. The
// rule is that of sdktrace.TraceIDRatioBased, so that a component
// downstream using the same ratio keeps the same traces.
func (t *tailSampler) ratioKeeps(id trace.TraceID) bool {
	return t.all || binary.BigEndian.Uint64(id[8:16])>>1 < t.bound
}

func (t *tailSampler) shard(id trace.TraceID) *shard {
	return &t.shards[id[0]&(numShards-1)]
}

// isLocalRoot reports whether a span with this parent starts the part of
// its trace that runs in this process.
func isLocalRoot(parent trace.SpanContext) bool {
	return !parent.IsValid() || parent.IsRemote()
}

// OnStart registers a local root with its trace, so that the trace is
// settled only when all its local roots have ended.
func (t *tailSampler) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	if t.closed.Load() {
		return
	}
	parent := s.Parent()
	if !isLocalRoot(parent) {
		return
	}
	id := s.SpanContext().TraceID()
	if t.ratioKeeps(id) {
		return
	}
	sh := t.shard(id)
	var out []sdktrace.ReadOnlySpan
	sh.mu.Lock()
	e := sh.get(id)
	if e == nil || e.state != statePending {
		e, out = t.open(sh, id, e)
	}
	e.roots++
	if e.root == nil {
		e.root = s
	}
	if parent.IsRemote() && parent.IsSampled() {
		e.keep = true
	}
	sh.mu.Unlock()
	t.export(out)
}

// OnEnd buffers s until its trace is settled, or passes it on at once when
// its trace is already known to be kept.
func (t *tailSampler) OnEnd(s sdktrace.ReadOnlySpan) {
	if t.closed.Load() {
		return
	}
	id := s.SpanContext().TraceID()
	if t.ratioKeeps(id) {
		t.next.OnEnd(s)
		return
	}
	parent := s.Parent()
	root := isLocalRoot(parent)
	keep := MustKeep(s) || (parent.IsRemote() && parent.IsSampled())

	sh := t.shard(id)
	var out []sdktrace.ReadOnlySpan
	sh.mu.Lock()
	e := sh.get(id)
	switch {
	case e == nil:
		e, out = t.open(sh, id, nil)
	case e.state == stateKept:
		sh.mu.Unlock()
		t.next.OnEnd(s)
		return
	case e.state == stateDropped:
		sh.mu.Unlock()
		return
	}
	if keep {
		e.keep = true
	}
	if root || len(e.spans) < t.maxSpans { // a local root is never left out
		e.spans = append(e.spans, s)
	} else {
		t.lostSpanCap.Add(1)
	}
	if root {
		e.roots--
		if e.roots <= 0 {
			out = append(out, t.settle(sh, e, e.keep, "")...)
		}
	}
	sh.mu.Unlock()
	t.export(out)
}

// get returns the entry of id, or nil. The shard's lock is held.
func (sh *shard) get(id trace.TraceID) *entry {
	return sh.traces[id]
}

// open makes the pending entry of id: it reopens e, a decided entry (a new
// local root joined a settled trace), or creates a new one. To make room it
// settles the traces that waited longer than the timeout and, at the cap,
// the oldest. It returns the spans those settlements keep. The shard's lock
// is held.
func (t *tailSampler) open(sh *shard, id trace.TraceID, e *entry) (*entry, []sdktrace.ReadOnlySpan) {
	now := t.now()
	if e != nil {
		// Out of the decided list first, so that making room cannot
		// forget it.
		sh.decided.remove(e)
	}
	var out []sdktrace.ReadOnlySpan
	for old := sh.pending.head; old != nil && now.Sub(old.created) >= t.timeout; old = sh.pending.head {
		out = append(out, t.settle(sh, old, t.mustKeepUnfinished(old), lostUnfinished)...)
	}
	if sh.pending.n >= sh.maxPending {
		old := sh.pending.head
		out = append(out, t.settle(sh, old, t.mustKeepUnfinished(old), lostTraceCap)...)
	}
	if e == nil {
		if n := len(sh.free); n > 0 {
			e = sh.free[n-1]
			sh.free[n-1] = nil
			sh.free = sh.free[:n-1]
		} else {
			e = new(entry)
		}
		e.id = id
		sh.traces[id] = e
	}
	e.state, e.created = statePending, now
	sh.pending.push(e)
	return e, out
}

// mustKeepUnfinished decides for a trace settled before its local root
// ended, looking at the root as it is now.
func (t *tailSampler) mustKeepUnfinished(e *entry) bool {
	return e.keep || (e.root != nil && MustKeep(e.root))
}

// settle decides the pending trace e: it is remembered as kept or dropped
// and its buffered spans are returned when kept. When dropped and lost is
// not empty, the spans are counted as lost for that reason. The shard's lock
// is held.
func (t *tailSampler) settle(sh *shard, e *entry, keep bool, lost string) []sdktrace.ReadOnlySpan {
	sh.pending.remove(e)
	var out []sdktrace.ReadOnlySpan
	if keep {
		e.state = stateKept
		out, e.spans = e.spans, nil // handed over; next takes its own references
	} else {
		e.state = stateDropped
		switch lost {
		case lostTraceCap:
			t.lostTraceCap.Add(int64(len(e.spans)))
		case lostUnfinished:
			t.lostUnfinished.Add(int64(len(e.spans)))
		}
		clear(e.spans)
		if cap(e.spans) > 16 {
			e.spans = nil
		} else {
			e.spans = e.spans[:0]
		}
	}
	e.root, e.roots, e.keep = nil, 0, false
	sh.decided.push(e)
	if sh.decided.n > sh.maxDecided {
		old := sh.decided.head
		sh.decided.remove(old)
		delete(sh.traces, old.id)
		if len(sh.free) < maxFree {
			*old = entry{spans: old.spans[:0]}
			sh.free = append(sh.free, old)
		}
	}
	return out
}

// export hands kept spans to next; called without any shard lock.
func (t *tailSampler) export(spans []sdktrace.ReadOnlySpan) {
	for _, s := range spans {
		t.next.OnEnd(s)
	}
}

// Shutdown settles every trace still waiting for its root, as if its
// timeout had passed, then shuts next down within ctx.
func (t *tailSampler) Shutdown(ctx context.Context) error {
	if t.closed.Swap(true) {
		return nil
	}
	for i := range t.shards {
		sh := &t.shards[i]
		var out []sdktrace.ReadOnlySpan
		sh.mu.Lock()
		for e := sh.pending.head; e != nil; e = sh.pending.head {
			out = append(out, t.settle(sh, e, t.mustKeepUnfinished(e), lostUnfinished)...)
		}
		sh.mu.Unlock()
		t.export(out)
	}
	return t.next.Shutdown(ctx)
}

// ForceFlush exports the spans of settled traces that next still holds.
// Traces waiting for their root stay buffered.
func (t *tailSampler) ForceFlush(ctx context.Context) error {
	return t.next.ForceFlush(ctx)
}

// buffered returns the number of pending traces and of spans they hold.
func (t *tailSampler) buffered() (traces, spans int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		traces += sh.pending.n
		for e := sh.pending.head; e != nil; e = e.next {
			spans += len(e.spans)
		}
		sh.mu.Unlock()
	}
	return traces, spans
}

// remembered returns the number of entries the shards hold, pending and
// decided.
func (t *tailSampler) remembered() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.traces)
		sh.mu.Unlock()
	}
	return n
}
