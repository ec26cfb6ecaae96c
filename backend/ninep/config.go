package ninep

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Defaults for Config's zero values.
const (
	// DefaultMsize lets one request carry 256 KiB of data: a 1 MiB FUSE
	// read is then four requests in flight at once.
	DefaultMsize = 256<<10 + 4096
	// DefaultTimeout is how long an operation waits for a lost server.
	DefaultTimeout = 10 * time.Second
	// DefaultReplyTimeout is how long a request may wait for the next byte
	// of a reply before the connection is declared dead. It is longer
	// than DefaultTimeout because an fsync of a large file is slow
	// without anything being wrong.
	DefaultReplyTimeout = 30 * time.Second

	// minMsize leaves room for a request header and some data.
	minMsize = 8 << 10
	// maxMsize is the largest message gVisor-derived servers accept.
	maxMsize = 4 << 20
)

// Config says how to reach a 9P2000.L server.
type Config struct {
	// Server is host:port, or the path of a unix socket (it starts
	// with a slash).
	Server string
	// Export is the attach name: the directory on the server that is
	// the FS's root.
	Export string
	// Msize is the largest message, header included; 0 means
	// DefaultMsize. The server may lower it.
	Msize uint32
	// TLS, if not nil, wraps the connection in TLS with this config.
	TLS *tls.Config
	// Timeout bounds dialing and the wait for a lost server; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// ReplyTimeout bounds the silence of a server that owes a reply;
	// 0 means DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// Exclusive promises that nobody else changes the export while the
	// FS is in use (interop mode exclusive). The FS then sends the
	// attribute changes of open files in the background; FS.Settle and
	// File.Sync are their barriers (see deferred.go).
	Exclusive bool
}

func (c Config) withDefaults() Config {
	if c.Msize == 0 {
		c.Msize = DefaultMsize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	return c
}

// Validate checks the fields that can be checked without the network.
func (c Config) Validate() error {
	if c.Server == "" {
		return fmt.Errorf("9P server address is empty")
	}
	if !strings.HasPrefix(c.Server, "/") {
		host, port, err := net.SplitHostPort(c.Server)
		if err != nil || host == "" {
			return fmt.Errorf("9P server %q: want host:port or an absolute unix socket path", c.Server)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("9P server %q: bad port %q", c.Server, port)
		}
	}
	if c.Msize != 0 && (c.Msize < minMsize || c.Msize > maxMsize) {
		return fmt.Errorf("msize %d out of range [%d, %d]", c.Msize, minMsize, maxMsize)
	}
	if !path.IsAbs(c.Export) || path.Clean(c.Export) != c.Export || strings.ContainsRune(c.Export, 0) {
		return fmt.Errorf("export %q: want an absolute, clean path", c.Export)
	}
	return nil
}

func (c Config) network() string {
	if strings.HasPrefix(c.Server, "/") {
		return "unix"
	}
	return "tcp"
}

// ParseSource parses the source of a 9P mount:
//
//	9p://HOST:PORT/EXPORT/PATH[?msize=N]
//	9p+unix:///PATH/TO/SOCKET?export=/EXPORT/PATH[&msize=N]
//
// The TCP form's path is the attach name. (net/url cannot parse these: a
// URL scheme must start with a letter.)
func ParseSource(src string) (Config, error) {
	rest, query, _ := strings.Cut(src, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Config{}, fmt.Errorf("9P source %q: %w", src, err)
	}
	var c Config
	switch {
	case strings.HasPrefix(rest, "9p://"):
		hostport, export, _ := strings.Cut(strings.TrimPrefix(rest, "9p://"), "/")
		if hostport == "" {
			return Config{}, fmt.Errorf("9P source %q: no host:port", src)
		}
		c.Server, c.Export = hostport, "/"+export
		if q.Has("export") {
			return Config{}, fmt.Errorf("9P source %q: the export is the URL's path", src)
		}
	case strings.HasPrefix(rest, "9p+unix://"):
		c.Server, c.Export = strings.TrimPrefix(rest, "9p+unix://"), q.Get("export")
		if c.Export == "" {
			c.Export = "/"
		}
	default:
		return Config{}, fmt.Errorf("9P source %q: scheme must be 9p:// or 9p+unix://", src)
	}
	for k := range q {
		if k != "msize" && k != "export" {
			return Config{}, fmt.Errorf("9P source %q: unknown option %q (msize, export)", src, k)
		}
	}
	if m := q.Get("msize"); m != "" {
		n, err := strconv.ParseUint(m, 10, 32)
		if err != nil {
			return Config{}, fmt.Errorf("9P source %q: msize: %w", src, err)
		}
		c.Msize = uint32(n)
	}
	return c, c.Validate()
}

// IsSource reports whether src names a 9P server rather than a directory.
func IsSource(src string) bool {
	return strings.HasPrefix(src, "9p://") || strings.HasPrefix(src, "9p+unix://")
}
