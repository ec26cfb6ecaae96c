// Package ninep is a remote on a 9P2000.L file server: csi-goferfs's own
// gofer (see Server) or an independent one such as diod.
//
// # Names
//
// Every name is relative to the export the FS attached to. A name is
// walked component by component from the attach point; "", ".", ".." and
// components holding a slash or a NUL are refused with EINVAL before
// anything is sent, and the server refuses them again (a walk never
// follows a symbolic link on the server side of a 9P2000.L server either:
// symlinks are resolved by the kernel of the mounting node).
//
// # Files and host FDs
//
// Open files are 9P fids. There is no host FD, so the data path serves
// their data through its own page cache. Large reads and writes are split
// into msize-sized requests that are in flight at the same time: the
// client multiplexes tags on one connection, so readahead does not pay one
// round trip per chunk.
//
// # Connection loss
//
// A reply that does not come within Config.ReplyTimeout, or any transport
// error, ends the session: its connection is closed (which fails every
// request still waiting on it) and a new one is dialed in the background,
// with back-off. Operations issued meanwhile wait at most Config.Timeout
// for it and then fail with EIO. Idempotent operations (reads, writes at
// an offset, stat, setattr, fsync, open without O_CREAT) that were cut off
// by the loss are retried once on the new session; namespace changes are
// not, because the server may have applied them: they fail with EIO.
// Open files are reopened on the new session by name, with their original
// flags minus O_CREAT, O_EXCL and O_TRUNC. A file unlinked meanwhile cannot
// be found again; its operations fail with ESTALE.
//
// # Errors
//
// Errors the server sends (Rlerror) are returned as syscall.Errno values,
// so the data path maps them in one place; transport failures are EIO,
// wrapped with what failed.
//
// # Lock order
//
//	file.mu
//	  FS.mu
package ninep
