package policy

import (
	"slices"
	"strings"
)

// Nearest returns the name of names closest to typed, for a "did you mean"
// on a task, role, role group or upstream name nobody knows. Case is
// ignored; the distance is the number of edits to the whole name or, when
// typed names no scope, to the part after the scope (New-MoveRequest is
// Exchange\New-MoveRequest). A name within a third of typed's length in
// edits (at least one) is near enough; ties go to the first in sort order.
// Nearest returns "" when no name is near enough.
func Nearest(names []string, typed string) string {
	t := []rune(strings.ToLower(typed))
	limit := max(1, len(t)/3)
	best, bestD := "", limit+1
	for _, name := range slices.Sorted(slices.Values(names)) {
		n := strings.ToLower(name)
		d := distance(t, []rune(n))
		if _, short, ok := strings.Cut(n, `\`); ok && !strings.Contains(typed, `\`) {
			d = min(d, distance(t, []rune(short)))
		}
		if d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b []rune) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
