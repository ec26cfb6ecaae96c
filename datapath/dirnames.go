package datapath

// On an exclusive volume nobody else changes the remote, so a directory
// the volume made itself holds exactly the entries made in it through the
// volume since. Keeping their names lets the lookup of any other name
// fail at once instead of asking the server: an untar or a build looks up
// every name it is about to create, and over a network each lookup is a
// round trip.
//
// The names are a cache of the remote's state, never a replacement: a
// name in the set is still looked up on the remote. Any error of a change
// in the directory (the server may or may not have applied it) makes the
// directory's names unknown again, as does the kernel forgetting the
// directory (its node goes).

// startEmpty records that n is a directory the volume has just made.
func (n *node) startEmpty() {
	if n.vol.opts.Mode != Exclusive {
		return
	}
	n.mu.Lock()
	n.names = make(map[string]struct{})
	n.mu.Unlock()
}

// knownAbsent reports whether n is known to have no entry called name.
func (n *node) knownAbsent(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil {
		return false
	}
	_, ok := n.names[name]
	return !ok
}

// entryChanged records the outcome of a change of n's entry name: it is
// there now (present) or gone; err != nil makes n's entries unknown.
func (n *node) entryChanged(name string, present bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.names == nil:
	case err != nil:
		n.names = nil
	case present:
		n.names[name] = struct{}{}
	default:
		delete(n.names, name)
	}
}
