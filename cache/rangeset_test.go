package cache

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveSet is the model: one optional value per offset of a small universe.
type naiveSet struct {
	v  [96]int
	ok [96]bool
}

func (m *naiveSet) set(r Range, v int) {
	for x := r.Start; x < r.End; x++ {
		m.v[x], m.ok[x] = v, true
	}
}

func (m *naiveSet) remove(r Range) {
	for x := r.Start; x < r.End; x++ {
		m.ok[x] = false
	}
}

// segments returns the model's canonical segments.
func (m *naiveSet) segments() []Segment[int] {
	var out []Segment[int]
	for x := range uint64(len(m.v)) {
		if !m.ok[x] {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End == x && out[n-1].Value == m.v[x] {
			out[n-1].End++
			continue
		}
		out = append(out, Segment[int]{Range{x, x + 1}, m.v[x]})
	}
	return out
}

func checkAgainstModel(t *testing.T, s *Set[int], m *naiveSet, step int) {
	t.Helper()
	want := m.segments()
	got := slices.Collect(s.Segments(Range{0, math.MaxUint64}))
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: segments\n got %v\nwant %v", step, got, want)
	}
	if s.Len() != len(want) {
		t.Fatalf("step %d: Len %d, want %d", step, s.Len(), len(want))
	}
	for x := range uint64(len(m.v) + 2) {
		seg, ok := s.Find(x)
		inModel := x < uint64(len(m.v)) && m.ok[x]
		if ok != inModel || ok && (seg.Value != m.v[x] || !seg.Contains(x)) {
			t.Fatalf("step %d: Find(%d) = %v, %v", step, x, seg, ok)
		}
		gap, gok := s.FindGap(x)
		if gok == inModel || gok && !gap.Contains(x) {
			t.Fatalf("step %d: FindGap(%d) = %v, %v", step, x, gap, gok)
		}
		if gok && gap.Start > 0 && x < uint64(len(m.v)) && !m.ok[gap.Start-1] {
			t.Fatalf("step %d: FindGap(%d) = %v is not maximal", step, x, gap)
		}
		if it := s.LowerBound(x); it.Ok() && it.Segment().End <= x {
			t.Fatalf("step %d: LowerBound(%d) = %v", step, x, it.Segment())
		}
	}
	r := Range{uint64(step % 40), uint64(step%40 + 30)}
	var covered uint64
	var gaps []Range
	for x := r.Start; x < r.End; x++ {
		if m.ok[x] {
			covered++
		} else if n := len(gaps); n > 0 && gaps[n-1].End == x {
			gaps[n-1].End++
		} else {
			gaps = append(gaps, Range{x, x + 1})
		}
	}
	if got := s.Covered(r); got != covered {
		t.Fatalf("step %d: Covered(%v) = %d, want %d", step, r, got, covered)
	}
	if got := slices.Collect(s.Gaps(r)); !slices.Equal(got, gaps) {
		t.Fatalf("step %d: Gaps(%v) = %v, want %v", step, r, got, gaps)
	}
}

func TestSetAgainstNaiveModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s Set[int]
		var m naiveSet
		for step := range 60 {
			a, b := uint64(rng.IntN(len(m.v))), uint64(rng.IntN(len(m.v)))
			r := Range{min(a, b), max(a, b) + 1}
			if r.End > uint64(len(m.v)) {
				r.End = uint64(len(m.v))
			}
			v := rng.IntN(3)
			switch rng.IntN(6) {
			case 0, 1:
				s.Set(r, v)
				m.set(r, v)
			case 2:
				s.Remove(r)
				m.remove(r)
			case 3:
				// Apply: increment present values, fill gaps with v.
				s.Apply(r, func(_ Range, old int, ok bool) (int, bool) {
					if ok {
						return old + 1, old < 3
					}
					return v, true
				})
				for x := r.Start; x < r.End; x++ {
					switch {
					case !m.ok[x]:
						m.v[x], m.ok[x] = v, true
					case m.v[x] < 3:
						m.v[x]++
					default:
						m.ok[x] = false
					}
				}
			case 4:
				if s.Covered(r) == 0 {
					s.Insert(r, v)
					m.set(r, v)
				}
			case 5:
				// InsertGap: r cut into pieces (some adjacent, some
				// not, values often equal, to exercise merging).
				if s.Covered(r) != 0 {
					break
				}
				var segs []Segment[int]
				for x := r.Start; x < r.End; {
					end := min(r.End, x+1+uint64(rng.IntN(4)))
					segs = append(segs, Segment[int]{Range{x, end}, rng.IntN(2)})
					x = end + uint64(rng.IntN(2))
				}
				s.InsertGap(segs)
				for _, sg := range segs {
					m.set(sg.Range, sg.Value)
				}
			}
			checkAgainstModel(t, &s, &m, round*1000+step)
		}
		if round%50 == 0 {
			s.Clear()
			m = naiveSet{}
			checkAgainstModel(t, &s, &m, round)
		}
	}
}

func TestSetSplitsAndMerges(t *testing.T) {
	var s Set[string]
	s.Set(Range{0, 100}, "a")
	s.Set(Range{40, 60}, "b")
	want := []Segment[string]{{Range{0, 40}, "a"}, {Range{40, 60}, "b"}, {Range{60, 100}, "a"}}
	if got := slices.Collect(s.Segments(Range{0, 200})); !slices.Equal(got, want) {
		t.Fatalf("after split: %v", got)
	}
	s.Set(Range{40, 60}, "a")
	if got := slices.Collect(s.Segments(Range{0, 200})); s.Len() != 1 || got[0].Range != (Range{0, 100}) {
		t.Fatalf("after merge: %v", got)
	}
	s.Remove(Range{10, 20})
	if got := slices.Collect(s.Gaps(Range{0, 200})); !slices.Equal(got, []Range{{10, 20}, {100, 200}}) {
		t.Fatalf("gaps: %v", got)
	}
	// Clipping: Segments reports only the part inside the range asked.
	if got := slices.Collect(s.Segments(Range{5, 15})); len(got) != 1 || got[0].Range != (Range{5, 10}) {
		t.Fatalf("clipped: %v", got)
	}
}

func TestSetEdgesOfOffsetSpace(t *testing.T) {
	var s Set[int]
	s.Set(Range{math.MaxUint64 - 10, math.MaxUint64}, 1)
	if _, ok := s.Find(math.MaxUint64); ok {
		t.Fatal("MaxUint64 is past every half-open range")
	}
	if seg, ok := s.Find(math.MaxUint64 - 1); !ok || seg.Value != 1 {
		t.Fatalf("Find(max-1) = %v, %v", seg, ok)
	}
	s.Remove(Range{0, math.MaxUint64})
	if s.Len() != 0 {
		t.Fatalf("Len after removing everything = %d", s.Len())
	}
}

func TestSetManySegmentsStaysLogarithmic(t *testing.T) {
	var s Set[int]
	const n = 200_000
	for i := range uint64(n) {
		s.Insert(Range{i * 2, i*2 + 1}, int(i))
	}
	if s.Len() != n {
		t.Fatalf("Len = %d", s.Len())
	}
	for i := uint64(0); i < n; i += 997 {
		if seg, ok := s.Find(i * 2); !ok || seg.Value != int(i) {
			t.Fatalf("Find(%d) = %v, %v", i*2, seg, ok)
		}
	}
	if s.level < 5 || s.level > maxLevel {
		t.Fatalf("skiplist uses %d levels for %d nodes", s.level, n)
	}
}
