// Package datapath is the FUSE file system that serves a volume's remote to
// pods: one session per staged volume, built on go-fuse's fs package.
//
// # Shape
//
// A node (node.go) owns the namespace: lookups, creation, removal, rename,
// attributes. A handle (handle.go) owns one open file: its open flags and
// the remote file behind it. The interop mode's choices (kernel caching,
// timeouts, open flags) live in policy.go; errno mapping lives in
// errno.go and nowhere else.
//
// # The host FD path
//
// When a remote file has a kernel descriptor (backend.HostFile, the local
// directory backend) and the volume does not set ForcePageCache, the handle
// offers it to the kernel for FUSE passthrough: the kernel reads, writes
// and maps the backing file itself (rules R3, W4, M7), which is both the
// fastest path and coherent with other users of the backing file. Whether
// the kernel accepts passthrough is probed once per mount; without it the
// daemon serves the I/O.
//
// # Without a host FD
//
// The daemon serves file I/O. Exclusive and writethrough volumes serve it
// through the daemon's page cache (package cache; cached.go), one cache per
// inode shared by all its opens and bounded by a node-wide budget:
// readahead on misses (R5, R6), cached writes marked dirty (W5, W6),
// written back at once in writethrough mode (W7), on O_SYNC (W8), fsync
// (S4), O_DIRECT overlap (R4, W3), eviction (C1) and unmount (C2).
// Shared volumes bypass it: every read and write reaches the remote (R3,
// W4).
//
// Writethrough and shared volumes open files with FOPEN_DIRECT_IO, so every
// request reaches the daemon and the kernel refuses shared mappings with
// ENODEV (M2, M3; see policy.go for where FUSE is stricter than the seed).
// Exclusive volumes also keep the kernel's page cache across opens and use
// its writeback cache; the kernel writes mapped and buffered pages to the
// daemon at writeback, fsync and unmount.
//
// # Observability
//
// The package counts but does not export (metrics.go): Volume.Stats
// returns the page cache's counters, its cached and dirty bytes and the
// replies that failed because the remote did (counted in errno.go's one
// mapping), read at the caller's pace. With Options.Observer set, a thin
// wrapper around go-fuse's raw file system (timedfs.go) reports each data
// operation's latency; without one there is no wrapper.
//
// # Security
//
// The daemon runs as root, so the mount is created with allow_other and
// default_permissions (the kernel checks permissions against the file
// attributes before any request reaches us), files are created with the
// caller's owner, and every remote access stays beneath the volume
// directory (see package backend).
package datapath
