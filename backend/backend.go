// Package backend defines the remotes a volume can live on.
//
// A remote is a directory tree reached through an FS. Names passed to an FS
// are slash-separated paths relative to the volume's root directory; the
// empty name is the root itself. Every component except the last was
// reached by a FUSE lookup, so it is a directory; no FS method follows a
// symbolic link at any component, and no FS method may reach a file outside
// the root, even while another process renames or replaces directories of
// the tree (implementations resolve every name beneath the root).
//
// # Errors
//
// Methods return errors that wrap a syscall.Errno wherever the remote gave
// one (ENOENT, EEXIST, ENOTEMPTY, ...), so the data path can map them to
// FUSE status codes in one place with errors.As.
package backend

import "golang.org/x/sys/unix"

// Attr is the metadata of one file.
type Attr struct {
	unix.Stat_t
	// Gen distinguishes two files that had the same inode number at
	// different times (the remote may reuse a number after a delete).
	Gen uint64
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Ino  uint64
	// Mode holds the file type bits (S_IFMT) only.
	Mode uint32
}

// FS is a remote directory tree. It is safe for concurrent use.
type FS interface {
	Lstat(name string) (Attr, error)
	// Open opens name with open(2) flags. With O_CREAT it creates a
	// regular file with the given permission bits.
	Open(name string, flags int, perm uint32) (File, error)
	Mkdir(name string, perm uint32) error
	Mknod(name string, mode uint32, dev uint64) error
	Symlink(target, name string) error
	Readlink(name string) (string, error)
	Link(oldName, newName string) error
	Unlink(name string) error
	Rmdir(name string) error
	// Rename renames with renameat2(2) flags (RENAME_NOREPLACE, RENAME_EXCHANGE).
	Rename(oldName, newName string, flags uint32) error
	Chmod(name string, perm uint32) error
	// Chown changes owner and group; -1 leaves one unchanged.
	Chown(name string, uid, gid int) error
	// Utimens sets access and modification times; a nil time is left alone.
	Utimens(name string, atime, mtime *unix.Timespec) error
	Truncate(name string, size int64) error
	Statfs() (unix.Statfs_t, error)
	ReadDir(name string) ([]DirEntry, error)
	Getxattr(name, attr string, dest []byte) (int, error)
	Setxattr(name, attr string, data []byte, flags int) error
	Listxattr(name string, dest []byte) (int, error)
	Removexattr(name, attr string) error
	// Close releases the FS. Files opened from it stay usable until closed.
	Close() error
}

// File is one open remote file.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Stat() (Attr, error)
	Truncate(size int64) error
	Allocate(mode uint32, off, size int64) error
	// Sync makes the file's data (and, unless dataOnly, metadata) durable.
	Sync(dataOnly bool) error
	// Flush is what close(2) of a descriptor means to the remote; for a
	// network file system it publishes the written data to other clients.
	Flush() error
	Close() error

	// The attribute calls of FS, on the open file: they keep working
	// after the file was unlinked or renamed.
	Chmod(perm uint32) error
	Chown(uid, gid int) error
	Utimens(atime, mtime *unix.Timespec) error
	Getxattr(attr string, dest []byte) (int, error)
	Setxattr(attr string, data []byte, flags int) error
	Listxattr(dest []byte) (int, error)
	Removexattr(attr string) error
}

// DirOpener is an FS that can list a directory and look up its entries
// through one handle of it. READDIRPLUS looks up every entry it lists;
// with a Dir that costs one call per entry instead of resolving the
// directory's path again each time.
type DirOpener interface {
	OpenDir(name string) (Dir, error)
}

// Dir is one open directory of an FS.
type Dir interface {
	// ReadDir lists the directory from its start, without "." and "..".
	ReadDir() ([]DirEntry, error)
	// Lstat returns the attributes of the entry base, a single path
	// component; a symbolic link is not followed.
	Lstat(base string) (Attr, error)
	// Stat returns the directory's own attributes. Like File.Stat it
	// keeps working after the directory was removed or renamed.
	Stat() (Attr, error)
	// Sync makes the directory's entries durable (fsync of a directory).
	Sync() error
	Close() error
}

// DirSyncer is an FS without open directories (not a DirOpener) that can
// still make a directory's entries durable, by the directory's name: the
// fsync(2) of a directory that databases make after a create or rename in
// it.
type DirSyncer interface {
	SyncDir(name string) error
}

// DirPrefetcher is an FS that can read directories ahead of a tree walk:
// their entries and the entries' attributes, so that listing and looking
// them up later does not wait for the remote. PrefetchDirs is a hint: it
// does not block, reports no error and changes nothing a caller can see.
type DirPrefetcher interface {
	PrefetchDirs(names []string)
}

// SiblingPrefetcher is an FS that can read ahead the files a reader is
// about to open: OpenedForRead tells it that the file name was just opened
// for reading, and when the opens follow the order in which the
// directory lists its files, it starts reading the next ones. It is a
// hint: it does not block, reports no error and changes nothing a caller
// can see.
type SiblingPrefetcher interface {
	OpenedForRead(name string)
}

// VectorReader is a File that reads into several buffers with one call,
// as preadv(2) does, so that the page cache can fill its pages without a
// staging copy.
type VectorReader interface {
	// ReadvAt is ReadAt into bufs in order, as if they were one buffer.
	ReadvAt(bufs [][]byte, off int64) (int, error)
}

// Prefetcher is a File that can start reading a range in the background,
// so that a later ReadAt of it does not wait for the remote. Prefetch is a
// hint: it does not block and reports no error.
type Prefetcher interface {
	Prefetch(off, length int64)
}

// Settler is an FS that sends some changes to the remote after the call
// that made them returned (an exclusive 9P remote's attribute changes).
// Settle waits until every change made so far has reached the remote and
// returns the first failure of one since the last Settle: it is the
// barrier of syncfs and unmount.
type Settler interface {
	Settle() error
}

// HostFile is a File with a kernel file descriptor that the kernel can use
// for I/O itself (the "host FD": FUSE passthrough).
type HostFile interface {
	File
	// Fd returns the descriptor. It stays owned by the File.
	Fd() int
}
