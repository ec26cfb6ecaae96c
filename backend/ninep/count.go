package ninep

import "sync/atomic"

// Requests counts the 9P requests an FS sent, by message type: the cost of
// an operation over a network is its round trips, and this is how to see
// them (a benchmark reports requests per file created).
type Requests [256]atomic.Uint64

// requestNames names the request types the client sends.
var requestNames = map[byte]string{
	8: "Tstatfs", 12: "Tlopen", 14: "Tlcreate", 16: "Tsymlink", 18: "Tmknod",
	20: "Trename", 22: "Treadlink", 24: "Tgetattr", 26: "Tsetattr", 30: "Txattrwalk",
	32: "Txattrcreate", 40: "Treaddir", 50: "Tfsync", 52: "Tlock", 54: "Tgetlock",
	70: "Tlink", 72: "Tmkdir", 74: "Trenameat", 76: "Tunlinkat", 100: "Tversion",
	104: "Tattach", 108: "Tflush", 110: "Twalk", 116: "Tread", 118: "Twrite",
	120: "Tclunk", 122: "Tremove", 124: "Tflushf", 126: "Twalkgetattr",
	// gVisor's versions of the creates, which carry the owner.
	128: "Tucreate", 130: "Tumkdir", 132: "Tumknod", 134: "Tusymlink",
}

// Snapshot returns the counts so far of the types sent at least once,
// keyed by name ("T<number>" for a type without one).
func (r *Requests) Snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for t := range r {
		if n := r[t].Load(); n > 0 {
			name, ok := requestNames[byte(t)]
			if !ok {
				name = "T" + string(rune('0'+t/100)) + string(rune('0'+t/10%10)) + string(rune('0'+t%10))
			}
			m[name] = n
		}
	}
	return m
}

// Requests returns the FS's request counters, over all its sessions.
func (fsys *FS) Requests() *Requests { return &fsys.requests }

// framer follows the message boundaries of a byte stream of 9P messages
// and counts each message's type. The client library writes a message in
// one or more pieces, the first holding the whole header.
type framer struct {
	counts *Requests
	left   uint32 // bytes of the current message not seen yet
}

func (fr *framer) see(p []byte) {
	for len(p) > 0 {
		if fr.left == 0 {
			if len(p) < 5 {
				return // not a header: lose count rather than guess
			}
			fr.left = uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
			fr.counts[p[4]].Add(1)
			if fr.left == 0 {
				return
			}
		}
		n := min(uint32(len(p)), fr.left)
		fr.left -= n
		p = p[n:]
	}
}
