package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

var t0 = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		clock *clocktest.Clock
		move  func(*clocktest.Clock)
		want  []time.Time // successive readings
	}{
		{desc: "stands still until moved", clock: clocktest.New(t0),
			want: []time.Time{t0, t0, t0}},
		{desc: "Add moves it on", clock: clocktest.New(t0), move: func(c *clocktest.Clock) { c.Add(90 * time.Second) },
			want: []time.Time{t0.Add(90 * time.Second), t0.Add(90 * time.Second)}},
		{desc: "Add with a negative duration moves it back", clock: clocktest.New(t0), move: func(c *clocktest.Clock) { c.Add(-time.Hour) },
			want: []time.Time{t0.Add(-time.Hour)}},
		{desc: "Set puts it at a time", clock: clocktest.New(t0), move: func(c *clocktest.Clock) { c.Set(t0.AddDate(1, 0, 0)) },
			want: []time.Time{t0.AddDate(1, 0, 0)}},
		{desc: "a stepping clock moves on after each reading", clock: clocktest.NewStepping(t0, time.Second),
			want: []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}},
		{desc: "a stepping clock moved by hand steps on from there", clock: clocktest.NewStepping(t0, time.Second), move: func(c *clocktest.Clock) { c.Add(time.Minute) },
			want: []time.Time{t0.Add(time.Minute), t0.Add(time.Minute + time.Second)}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.move != nil {
				tc.move(tc.clock)
			}
			for i, want := range tc.want {
				require.Equal(t, want, tc.clock.Now(), "reading %d", i)
			}
		})
	}
}

// The code under test reads the clock from its own goroutines while the
// test moves it (run with -race).
func TestClockConcurrent(t *testing.T) {
	c := clocktest.NewStepping(t0, time.Millisecond)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.Now()
				c.Add(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, t0.Add(800*time.Millisecond), c.Now())
}
