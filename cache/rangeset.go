package cache

import (
	"fmt"
	"iter"
	"math"
)

// Range is the half-open interval [Start, End) of file offsets.
type Range struct {
	Start, End uint64
}

// Len returns the number of offsets in r.
func (r Range) Len() uint64 {
	if r.End <= r.Start {
		return 0
	}
	return r.End - r.Start
}

// Empty reports whether r contains no offset.
func (r Range) Empty() bool { return r.Start >= r.End }

// Contains reports whether x lies in r.
func (r Range) Contains(x uint64) bool { return r.Start <= x && x < r.End }

// Intersect returns the overlap of r and o; it is empty (with Start ==
// End) when they do not overlap.
func (r Range) Intersect(o Range) Range {
	s, e := max(r.Start, o.Start), min(r.End, o.End)
	if e < s {
		e = s
	}
	return Range{s, e}
}

func (r Range) String() string { return fmt.Sprintf("[%#x, %#x)", r.Start, r.End) }

// Segment is a range of a Set together with the value it holds.
type Segment[V comparable] struct {
	Range
	Value V
}

// maxLevel bounds skiplist towers; with p = 1/4 it is ample for 2^40 segments.
const maxLevel = 20

type node[V comparable] struct {
	seg  Segment[V]
	next []*node[V]
	// next1 backs next for single-level towers (three quarters of all
	// nodes), so that most inserts allocate once.
	next1 [1]*node[V]
}

// Set is an ordered set of disjoint ranges, each mapped to a value.
// Adjacent segments holding equal values are merged, and operations on part
// of a segment split it, so the segments are always the unique minimal
// description of the mapping. Lookups are O(log n) (a skiplist).
//
// The zero value is an empty set. A Set must not be copied after first use,
// and is not safe for concurrent use: callers hold their own lock.
type Set[V comparable] struct {
	head     node[V]
	headNext [maxLevel]*node[V]
	level    int // towers in use; 0 when empty and never used
	count    int
	rnd      uint64
}

func (s *Set[V]) init() {
	if s.head.next == nil {
		s.head.next = s.headNext[:]
		s.level = 1
		s.rnd = 0x9e3779b97f4a7c15
	}
}

// Len returns the number of segments.
func (s *Set[V]) Len() int { return s.count }

// Clear removes every segment.
func (s *Set[V]) Clear() {
	s.init()
	clear(s.headNext[:])
	s.level, s.count = 1, 0
}

// succ returns the node after n, or nil. The head of a never-used Set has
// no towers yet: read paths must not initialize them, since concurrent
// readers may share the Set.
func (n *node[V]) succ() *node[V] {
	if len(n.next) == 0 {
		return nil
	}
	return n.next[0]
}

// lastBefore returns the last node with Start < x, or &s.head.
func (s *Set[V]) lastBefore(x uint64) *node[V] {
	n := &s.head
	for i := s.level - 1; i >= 0; i-- {
		for nx := n.next[i]; nx != nil && nx.seg.Start < x; nx = n.next[i] {
			n = nx
		}
	}
	return n
}

// preds fills update with the last node at each level whose Start < x.
//
// Preconditions: s is initialized.
func (s *Set[V]) preds(x uint64, update *[maxLevel]*node[V]) {
	n := &s.head
	for i := s.level - 1; i >= 0; i-- {
		for nx := n.next[i]; nx != nil && nx.seg.Start < x; nx = n.next[i] {
			n = nx
		}
		update[i] = n
	}
}

// containing returns the node whose range contains x, or nil.
func (s *Set[V]) containing(x uint64) *node[V] {
	if x == math.MaxUint64 {
		return nil // End is at most MaxUint64, so no range holds it
	}
	n := s.lastBefore(x + 1)
	if n != &s.head && x < n.seg.End {
		return n
	}
	return nil
}

// Find returns the segment containing x.
func (s *Set[V]) Find(x uint64) (Segment[V], bool) {
	if n := s.containing(x); n != nil {
		return n.seg, true
	}
	return Segment[V]{}, false
}

// FindGap returns the maximal range around x that no segment covers; ok is
// false when x lies in a segment.
func (s *Set[V]) FindGap(x uint64) (gap Range, ok bool) {
	if s.containing(x) != nil {
		return Range{}, false
	}
	gap = Range{0, math.MaxUint64}
	n := s.lastBefore(x)
	if n != &s.head {
		gap.Start = n.seg.End
	}
	if nx := n.succ(); nx != nil {
		gap.End = nx.seg.Start
	}
	return gap, true
}

func (s *Set[V]) randomLevel() int {
	// xorshift64: cheap, deterministic, and good enough for tower heights.
	s.rnd ^= s.rnd << 13
	s.rnd ^= s.rnd >> 7
	s.rnd ^= s.rnd << 17
	x, lvl := s.rnd, 1
	for lvl < maxLevel && x&3 == 0 {
		lvl++
		x >>= 2
	}
	return lvl
}

// insertNode links a new node for seg, which must not overlap any segment.
func (s *Set[V]) insertNode(seg Segment[V]) *node[V] {
	var update [maxLevel]*node[V]
	s.preds(seg.Start, &update)
	return s.linkAfter(&update, seg)
}

// linkAfter links a new node for seg after the nodes in update (the last
// node before seg.Start at each level), and leaves update pointing at the
// new node on the levels it occupies, so a following segment can be linked
// after it without another search.
func (s *Set[V]) linkAfter(update *[maxLevel]*node[V], seg Segment[V]) *node[V] {
	lvl := s.randomLevel()
	for ; s.level < lvl; s.level++ {
		update[s.level] = &s.head
	}
	n := &node[V]{seg: seg}
	if lvl == 1 {
		n.next = n.next1[:]
	} else {
		n.next = make([]*node[V], lvl)
	}
	for i := range lvl {
		n.next[i] = update[i].next[i]
		update[i].next[i] = n
		update[i] = n
	}
	s.count++
	return n
}

// InsertGap inserts segs, which must be non-empty ranges, sorted,
// disjoint, and all inside one gap of s, merging equal neighbours as
// Insert does. It finds the gap once and then links each node after the
// previous one, where calling Insert per segment would search the whole
// list each time: a fill adds a window of hundreds of pages at once.
func (s *Set[V]) InsertGap(segs []Segment[V]) {
	if len(segs) == 0 {
		return
	}
	s.init()
	var update [maxLevel]*node[V]
	s.preds(segs[0].Start, &update)
	for _, sg := range segs {
		if prev := update[0]; prev != &s.head && prev.seg.End == sg.Start && prev.seg.Value == sg.Value {
			prev.seg.End = sg.End
			continue
		}
		s.linkAfter(&update, sg)
	}
	last := update[0]
	if nx := last.next[0]; nx != nil && nx.seg.Start == last.seg.End && nx.seg.Value == last.seg.Value {
		last.seg.End = nx.seg.End
		s.deleteStarts(Range{nx.seg.Start, nx.seg.Start + 1})
	}
}

// deleteStarts unlinks every node whose Start lies in r.
func (s *Set[V]) deleteStarts(r Range) {
	var update [maxLevel]*node[V]
	s.preds(r.Start, &update)
	for i := range s.level {
		for nx := update[i].next[i]; nx != nil && nx.seg.Start < r.End; nx = update[i].next[i] {
			update[i].next[i] = nx.next[i]
			if i == 0 {
				s.count--
			}
		}
	}
	for s.level > 1 && s.head.next[s.level-1] == nil {
		s.level--
	}
}

// split cuts the segment that strictly contains x in two at x.
func (s *Set[V]) split(x uint64) {
	n := s.lastBefore(x)
	if n == &s.head || n.seg.End <= x {
		return
	}
	tail := Segment[V]{Range{x, n.seg.End}, n.seg.Value}
	n.seg.End = x
	s.insertNode(tail)
}

// Insert maps r to v, merging with equal neighbours. It is cheaper than Set
// when the caller knows r is a gap.
//
// Preconditions: r is non-empty and overlaps no segment.
func (s *Set[V]) Insert(r Range, v V) {
	s.init()
	n := s.lastBefore(r.Start)
	if n != &s.head && n.seg.End == r.Start && n.seg.Value == v {
		n.seg.End = r.End
	} else {
		n = s.insertNode(Segment[V]{r, v})
	}
	if nx := n.next[0]; nx != nil && nx.seg.Start == n.seg.End && nx.seg.Value == v {
		n.seg.End = nx.seg.End
		s.deleteStarts(Range{nx.seg.Start, nx.seg.Start + 1})
	}
}

// Remove deletes every part of every segment that lies in r.
func (s *Set[V]) Remove(r Range) {
	if r.Empty() {
		return
	}
	s.init()
	s.split(r.Start)
	s.split(r.End)
	s.deleteStarts(r)
}

// Set maps every offset in r to v.
func (s *Set[V]) Set(r Range, v V) {
	if r.Empty() {
		return
	}
	s.Remove(r)
	s.Insert(r, v)
}

type piece[V comparable] struct {
	r  Range
	v  V
	ok bool
}

// Apply visits r as a sequence of pieces in order, each either (part of) a
// segment (ok true, with its value) or a gap (ok false), and replaces each
// piece with fn's answer: a value, or nothing when keep is false.
func (s *Set[V]) Apply(r Range, fn func(r Range, v V, ok bool) (nv V, keep bool)) {
	if r.Empty() {
		return
	}
	s.init()
	s.split(r.Start)
	s.split(r.End)
	var buf [16]piece[V]
	pieces := buf[:0]
	x := r.Start
	for n := s.lastBefore(r.Start).next[0]; n != nil && n.seg.Start < r.End; n = n.next[0] {
		if x < n.seg.Start {
			pieces = append(pieces, piece[V]{r: Range{x, n.seg.Start}})
		}
		pieces = append(pieces, piece[V]{n.seg.Range, n.seg.Value, true})
		x = n.seg.End
	}
	if x < r.End {
		pieces = append(pieces, piece[V]{r: Range{x, r.End}})
	}
	s.deleteStarts(r)
	for _, p := range pieces {
		if v, keep := fn(p.r, p.v, p.ok); keep {
			s.Insert(p.r, v)
		}
	}
}

// Iterator points at a segment of a Set. Any change to the Set invalidates
// it.
type Iterator[V comparable] struct{ n *node[V] }

// Ok reports whether it points at a segment.
func (it Iterator[V]) Ok() bool { return it.n != nil }

// Segment returns the segment it points at.
func (it Iterator[V]) Segment() Segment[V] { return it.n.seg }

// Next returns an iterator at the following segment.
func (it Iterator[V]) Next() Iterator[V] { return Iterator[V]{it.n.next[0]} }

// LowerBound returns an iterator at the first segment that ends after x.
func (s *Set[V]) LowerBound(x uint64) Iterator[V] {
	if n := s.containing(x); n != nil {
		return Iterator[V]{n}
	}
	return Iterator[V]{s.lastBefore(x).succ()}
}

// Segments yields, in order, the segments that overlap r, clipped to r.
func (s *Set[V]) Segments(r Range) iter.Seq[Segment[V]] {
	return func(yield func(Segment[V]) bool) {
		for it := s.LowerBound(r.Start); it.Ok() && it.n.seg.Start < r.End; it = it.Next() {
			seg := it.n.seg
			seg.Range = seg.Intersect(r)
			if !yield(seg) {
				return
			}
		}
	}
}

// Gaps yields, in order, the maximal parts of r that no segment covers.
func (s *Set[V]) Gaps(r Range) iter.Seq[Range] {
	return func(yield func(Range) bool) {
		x := r.Start
		for seg := range s.Segments(r) {
			if x < seg.Start && !yield(Range{x, seg.Start}) {
				return
			}
			x = seg.End
		}
		if x < r.End {
			yield(Range{x, r.End})
		}
	}
}

// Covered returns how many offsets of r lie in segments.
func (s *Set[V]) Covered(r Range) uint64 {
	var n uint64
	for seg := range s.Segments(r) {
		n += seg.Len()
	}
	return n
}
