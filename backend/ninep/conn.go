package ninep

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// ErrDialect reports a server that answered, but not in 9P2000.L.
var ErrDialect = errors.New("not a 9P2000.L server")

// session is one connection to the server and its attach point.
type session struct {
	client *p9.Client
	root   p9.File
	// chunk is how much data one read or write request carries.
	chunk int
	// walkGetattr: the server walks and stats in one request (gVisor's
	// 9P2000.L.Google extensions; diod does not have them).
	walkGetattr bool
	// noUnlinkat is set once the server answered Tunlinkat with
	// EOPNOTSUPP or ENOSYS (diod does): from then on names are removed
	// with Tremove, as the Linux 9P client does for such servers.
	noUnlinkat atomic.Bool
	// noRenameat likewise switches renames to Trename.
	noRenameat atomic.Bool
	// versionIsBirth: the server's QID versions are birth times (the
	// gofer's are; see birthVersion).
	versionIsBirth bool
	// dirs keeps fids of directories ready for creates; nil unless the
	// FS is exclusive (see dirfids.go).
	dirs      *dirFids
	closeOnce sync.Once
}

func (s *session) close() { s.closeOnce.Do(func() { s.client.Close() }) }

// dial connects, negotiates the protocol and attaches to cfg.Export, all
// within cfg.Timeout.
func dial(ctx context.Context, cfg Config, counts *Requests) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 15 * time.Second}
	raw, err := d.DialContext(ctx, cfg.network(), cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("dial 9P server %s: %w", cfg.Server, err)
	}
	var conn net.Conn = raw
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if cfg.TLS != nil {
		tc := tls.Client(raw, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with 9P server %s: %w", cfg.Server, err)
		}
		conn = tc
	}
	s, err := handshake(conn, cfg, deadline, counts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func handshake(conn net.Conn, cfg Config, deadline time.Time, counts *Requests) (*session, error) {
	msize, version, err := negotiate(conn, cfg.Msize)
	if err != nil {
		return nil, fmt.Errorf("9P server %s: %w", cfg.Server, err)
	}
	hc := &handshakeConn{Conn: conn, msize: msize, version: version, uid: uint32(createUID)}
	hc.framer.counts = counts
	dc := &deadlineConn{Conn: hc}
	dc.timeout.Store(int64(time.Until(deadline)))
	client, err := p9.NewClient(dc, p9.WithMessageSize(msize))
	if err != nil {
		return nil, fmt.Errorf("9P server %s: version: %w", cfg.Server, err)
	}
	root, err := client.Attach(cfg.Export)
	if err != nil {
		return nil, fmt.Errorf("attach %q on 9P server %s: %w", cfg.Export, cfg.Server, mapErr(err))
	}
	qid, valid, attr, err := root.GetAttr(p9.AttrMaskAll)
	if err != nil {
		return nil, fmt.Errorf("stat export %q on 9P server %s: %w", cfg.Export, cfg.Server, mapErr(err))
	}
	if qid.Type&p9.TypeDir == 0 {
		return nil, fmt.Errorf("export %q on 9P server %s: %w", cfg.Export, cfg.Server, syscall.ENOTDIR)
	}
	dc.timeout.Store(int64(cfg.ReplyTimeout))
	conn.SetDeadline(time.Time{})
	s := &session{
		client: client,
		root:   root,
		// Leave room for the largest request header; a multiple of
		// the page size keeps cache fills page-aligned.
		chunk:          int(msize-4096) &^ 4095,
		walkGetattr:    client.Version() > 0,
		versionIsBirth: versionIsBirth(qid, valid, attr),
	}
	if cfg.Exclusive {
		s.dirs = newDirFids(s)
	}
	return s, nil
}

// 9P message types used by the version handshake.
const (
	msgTversion = 100
	msgRversion = 101
	msgRlerror  = 7
	msgRerror   = 107
	noTag       = 0xffff
)

// negotiate agrees on the protocol version and msize itself, before the
// client library gets the connection: the library asks only for gVisor's
// "9P2000.L.Google.N" versions, which plain 9P2000.L servers such as diod
// refuse, and it neither adopts a smaller msize from the server nor tells
// a server of another dialect apart from a broken one. So the Google
// version is offered first and plain 9P2000.L second; the library's own
// Tversion is then answered locally (handshakeConn) with the result.
func negotiate(conn net.Conn, msize uint32) (uint32, string, error) {
	got, version, err := tversion(conn, msize, p9.HighestVersionString())
	if errors.Is(err, errRefused) {
		got, version, err = tversion(conn, msize, "9P2000.L")
	}
	if err != nil {
		return 0, "", err
	}
	if !strings.HasPrefix(version, "9P2000.L") {
		return 0, "", fmt.Errorf("server speaks %q: %w", version, ErrDialect)
	}
	if got < minMsize {
		return 0, "", fmt.Errorf("server msize %d is below %d: %w", got, minMsize, ErrDialect)
	}
	return min(got, msize), version, nil
}

// errRefused is a Tversion answered with an error: the server may accept
// an older version string.
var errRefused = errors.New("version refused")

func encodeVersion(typ byte, tag uint16, msize uint32, version string) []byte {
	msg := make([]byte, 0, 13+len(version))
	msg = binary.LittleEndian.AppendUint32(msg, uint32(4+1+2+4+2+len(version)))
	msg = append(msg, typ)
	msg = binary.LittleEndian.AppendUint16(msg, tag)
	msg = binary.LittleEndian.AppendUint32(msg, msize)
	msg = binary.LittleEndian.AppendUint16(msg, uint16(len(version)))
	return append(msg, version...)
}

func tversion(conn net.Conn, msize uint32, version string) (uint32, string, error) {
	if _, err := conn.Write(encodeVersion(msgTversion, noTag, msize, version)); err != nil {
		return 0, "", fmt.Errorf("send version: %w", err)
	}
	var hdr [7]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		// crypto/tls reports a TLS alert from the peer as a
		// *net.OpError with Op "remote error".
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "remote error" {
			// TLS 1.3 servers refuse a client certificate after the
			// handshake; the refusal arrives with the first read.
			return 0, "", fmt.Errorf("TLS: the server refused the connection: %w", err)
		}
		return 0, "", fmt.Errorf("read version reply: %w (%w)", err, ErrDialect)
	}
	size := binary.LittleEndian.Uint32(hdr[0:4])
	typ, tag := hdr[4], binary.LittleEndian.Uint16(hdr[5:7])
	if size < 7 || size > 8192 || tag != noTag {
		return 0, "", fmt.Errorf("garbage in reply to Tversion: %w", ErrDialect)
	}
	body := make([]byte, size-7)
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, "", fmt.Errorf("read version reply: %w (%w)", err, ErrDialect)
	}
	switch typ {
	case msgRversion:
	case msgRlerror, msgRerror:
		return 0, "", fmt.Errorf("server refused version %s: %w", version, errRefused)
	default:
		return 0, "", fmt.Errorf("reply of type %d to Tversion: %w", typ, ErrDialect)
	}
	if len(body) < 6 {
		return 0, "", fmt.Errorf("short Rversion: %w", ErrDialect)
	}
	got := binary.LittleEndian.Uint32(body[0:4])
	n := int(binary.LittleEndian.Uint16(body[4:6]))
	if len(body) < 6+n {
		return 0, "", fmt.Errorf("short Rversion: %w", ErrDialect)
	}
	v := string(body[6 : 6+n])
	if v == "unknown" {
		return 0, "", fmt.Errorf("server does not know version %s: %w", version, errRefused)
	}
	return got, v, nil
}

// handshakeConn answers the client library's Tversion itself with the
// version and msize negotiate agreed on, fills in the user of its Tattach,
// and passes everything after that through.
//
// The library attaches with neither a user name nor a numeric user
// (n_uname), which servers that map users (diod) refuse; the numeric user
// is set to the daemon's own, the same size on the wire.
type handshakeConn struct {
	net.Conn
	msize   uint32
	version string
	uid     uint32

	mu      sync.Mutex
	pending []byte // a message written in pieces, until complete
	reply   []byte // the Rversion the library reads next
	state   int    // 0: before Tversion, 1: before Tattach, 2: passthrough
	framer  framer // counts the requests passed through
}

const msgTattach = 104

func (c *handshakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == 2 {
		c.framer.see(p)
		return c.Conn.Write(p)
	}
	c.pending = append(c.pending, p...)
	if len(c.pending) < 7 || len(c.pending) < int(binary.LittleEndian.Uint32(c.pending)) {
		return len(p), nil
	}
	msg := c.pending
	c.pending = nil
	switch {
	case c.state == 0 && msg[4] == msgTversion:
		tag := binary.LittleEndian.Uint16(msg[5:7])
		c.reply = encodeVersion(msgRversion, tag, c.msize, c.version)
		c.state = 1
		return len(p), nil
	case c.state == 1 && msg[4] == msgTattach:
		if nu := msg[len(msg)-4:]; binary.LittleEndian.Uint32(nu) == uint32(p9.NoUID) {
			binary.LittleEndian.PutUint32(nu, c.uid)
		}
		c.state = 2
		if _, err := c.Conn.Write(msg); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return 0, fmt.Errorf("9P client sent message type %d during the handshake", msg[4])
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.reply) > 0 {
		n := copy(p, c.reply)
		c.reply = c.reply[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// deadlineConn bounds every read and write: the client library only reads
// while a request waits for its reply, so a read that sees no byte for
// timeout means the server owes a reply and is silent. The deadline ends
// the read with an error, which fails every waiting request and lets the
// FS reconnect instead of hanging.
type deadlineConn struct {
	net.Conn
	timeout atomic.Int64 // time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(time.Duration(c.timeout.Load())))
	return c.Conn.Read(p)
}

// Write never reports an error to the client library. When its send of
// a request fails, the library returns without removing the request from
// its table of pending replies, but puts the reply's channel back in a
// pool shared by all clients; the reader's error then lands in a channel
// that some later request, possibly on another connection, takes from the
// pool and mistakes for its own failure. So a failed write closes the
// connection and claims success: the request then waits for its reply
// like any other, and the reader, failing on the closed connection, fails
// it properly.
func (c *deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(c.timeout.Load())))
	if _, err := c.Conn.Write(p); err != nil {
		c.Conn.Close()
	}
	return len(p), nil
}

// mapErr turns an Rlerror from the server into a syscall.Errno and leaves
// other (transport) errors alone.
func mapErr(err error) error {
	var le linux.Errno
	if errors.As(err, &le) {
		return syscall.Errno(le)
	}
	return err
}

// isReply reports whether err came from the server (an errno) rather than
// from the transport.
func isReply(err error) bool {
	var le linux.Errno
	var se syscall.Errno
	return errors.As(err, &le) || errors.As(err, &se)
}
