// Package clocktest is the clock tests control: it stands in for time.Now
// wherever a package takes a Now func, so no test sleeps to wait for an
// expiry or a timeout.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a clock that tests move by hand. It is safe for concurrent use:
// the code under test may read it from its own goroutines.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

// New returns a clock that reads start until it is moved.
func New(start time.Time) *Clock { return &Clock{now: start} }

// NewStepping returns a clock that reads start, then moves on by step after
// each reading: start, start+step, start+2*step, ... It gives each event of
// a test a time of its own without the test moving the clock.
func NewStepping(start time.Time, step time.Duration) *Clock {
	return &Clock{now: start, step: step}
}

// Now returns the clock's time; it has the signature of time.Now, so
// c.Now can be passed where a package takes a clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

// Add moves the clock on by d (back when d is negative).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
