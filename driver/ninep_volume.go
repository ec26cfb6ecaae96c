package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
)

// A 9P volume is managed by whichever controller instance gets the call:
// the chart runs one on every node, and a 9P volume has no node. So the
// volume describes itself:
//
//   - Its ID names the server, the export and the volume's directory:
//     "9p__" enc(server) "__" enc(export) "__" dir (ninepVolumeID). Any
//     controller can find the volume from the ID alone, which is all that
//     DeleteVolume gets.
//   - Its metadata (name, capacity, parameters) lives on the server, in
//     <export>/.goferfs-meta/<dir>.json, written before the directory is
//     made and removed after it is deleted: a directory without metadata
//     was not made by this driver and is neither adopted nor deleted.
//
// dir is derived from the CreateVolume name exactly as a local volume's ID
// is (volumeIDForName), so a volume's directory on the server is the same
// as under the earlier scheme, where the ID was dir itself and the
// metadata stayed in the provisioning node's Root (those IDs still work
// on that node, see DeleteVolume).
//
// enc keeps [A-Za-z0-9-] and writes every other byte as '_' and two
// upper-case hex digits, except '.': in the server it stands for itself
// (host names are full of dots), in the export it stands for '/' (paths
// are full of slashes), so typical IDs stay short and readable:
// "9p__gofer.storage.svc_3A5640__.__pvc-<uid>" (export "/"),
// "9p__10.0.0.5_3A5640__.srv.volumes__pvc-<uid>". Encoded fields never
// contain "__" and never end in '_', so the first two "__" after the
// prefix split the ID, and dir, which may contain "__", is the rest. Only
// the canonical encoding is accepted, so one volume has one ID (its lock
// key).

// ninepIDPrefix starts the ID of every 9P volume made by CreateVolume.
// volumeIDForName never returns an ID with this prefix.
const ninepIDPrefix = "9p__"

const ninepIDSep = "__"

// maxMetaSize bounds the metadata file read from a server.
const maxMetaSize = 64 << 10

// ninepRef is what a 9P volume ID names.
type ninepRef struct {
	Server, Export string
	// Dir is the volume's directory under Export: one plain path
	// component (checkVolumeID).
	Dir string
}

// ninepVolumeID is the ID of the volume in directory dir of export on
// server. It may exceed maxVolumeIDLen; CreateVolume checks.
func ninepVolumeID(server, export, dir string) string {
	return ninepIDPrefix + encodeIDField(server, '.') + ninepIDSep + encodeIDField(export, '/') + ninepIDSep + dir
}

// parseNinepVolumeID decodes a 9P volume ID. It reports false for an ID
// without the 9P prefix (a local volume, a volume of the earlier 9P
// scheme, or a static one), and InvalidArgument for one with the prefix
// that is malformed or names an invalid server, export or directory.
//
// Preconditions:
//   - id passed checkVolumeID.
func parseNinepVolumeID(id string) (ninepRef, bool, error) {
	rest, ok := strings.CutPrefix(id, ninepIDPrefix)
	if !ok {
		return ninepRef{}, false, nil
	}
	bad := func(format string, a ...any) (ninepRef, bool, error) {
		return ninepRef{}, true, status.Errorf(codes.InvalidArgument, "volume_id %q is not a valid 9P volume ID: %s", id, fmt.Sprintf(format, a...))
	}
	server, rest, ok1 := strings.Cut(rest, ninepIDSep)
	export, dir, ok2 := strings.Cut(rest, ninepIDSep)
	if !ok1 || !ok2 {
		return bad("want %sSERVER%sEXPORT%sDIRECTORY", ninepIDPrefix, ninepIDSep, ninepIDSep)
	}
	var r ninepRef
	if r.Server, ok = decodeIDField(server, '.'); !ok {
		return bad("bad encoding of the server %q", server)
	}
	if r.Export, ok = decodeIDField(export, '/'); !ok {
		return bad("bad encoding of the export %q", export)
	}
	if err := (ninep.Config{Server: r.Server, Export: "/"}).Validate(); err != nil {
		return bad("%s: %v", ParamServer, err)
	}
	if err := (ninep.Config{Server: r.Server, Export: r.Export}).Validate(); err != nil {
		return bad("%s: %v", ParamExport, err)
	}
	if err := checkVolumeID(dir); err != nil {
		return bad("directory %q is not one plain path component", dir)
	}
	r.Dir = dir
	return r, true, nil
}

// ninepDir is the directory on the server of 9P volume id: the one its ID
// names, or id itself for the IDs of the earlier scheme and static volumes.
func ninepDir(id string) string {
	if r, ok, err := parseNinepVolumeID(id); ok && err == nil {
		return r.Dir
	}
	return id
}

func idLiteral(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
}

// encodeIDField encodes one field of a 9P volume ID; dot is the byte that
// '.' stands for.
func encodeIDField(s string, dot byte) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case idLiteral(b):
			sb.WriteByte(b)
		case b == dot:
			sb.WriteByte('.')
		default:
			sb.Write([]byte{'_', hexDigits[b>>4], hexDigits[b&15]})
		}
	}
	return sb.String()
}

// decodeIDField inverts encodeIDField; it reports false for anything
// encodeIDField would not have written.
func decodeIDField(s string, dot byte) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case idLiteral(b):
			sb.WriteByte(b)
		case b == '.':
			sb.WriteByte(dot)
		case b == '_' && i+2 < len(s):
			v, err := hex.DecodeString(s[i+1 : i+3])
			if err != nil {
				return "", false
			}
			sb.WriteByte(v[0])
			i += 2
		default:
			return "", false
		}
	}
	out := sb.String()
	return out, out != "" && encodeIDField(out, dot) == s
}

// createNinepVolume is CreateVolume of a volume on a 9P server.
//
// Preconditions:
//   - the request passed CreateVolume's checks; want describes it.
func (d *Driver) createNinepVolume(ctx context.Context, want *volumeMeta, cr *csi.CapacityRange) (*csi.CreateVolumeResponse, error) {
	p := want.Params
	dir := volumeIDForName(want.Name)
	id := ninepVolumeID(p.Server, p.Export, dir)
	if len(id) > maxVolumeIDLen {
		return nil, status.Errorf(codes.InvalidArgument,
			"parameters: the volume ID %q would be %d bytes long, above the limit of %d: it names %s %q and %s %q; use a shorter %s (an IP address, a Service name without the cluster domain) or %s",
			id, len(id), maxVolumeIDLen, ParamServer, p.Server, ParamExport, p.Export, ParamServer, ParamExport)
	}
	return runLocked(ctx, d, id, func() (*csi.CreateVolumeResponse, error) {
		m, err := d.ensureNinepVolume(ctx, dir, want, cr)
		if err != nil {
			return nil, err
		}
		// No AccessibleTopology: the volume is reachable from every node
		// that reaches the server, so its PV has no node affinity.
		return &csi.CreateVolumeResponse{Volume: &csi.Volume{
			VolumeId:      id,
			CapacityBytes: m.CapacityBytes,
			VolumeContext: m.Params.volumeContext(),
		}}, nil
	})
}

// ensureNinepVolume creates the volume in directory dir as described by
// want, or returns the existing one if it is compatible with want and cr.
// The metadata is written before the directory, so a crash in between
// is finished by the retry.
func (d *Driver) ensureNinepVolume(ctx context.Context, dir string, want *volumeMeta, cr *csi.CapacityRange) (*volumeMeta, error) {
	p := want.Params
	fsys, err := d.dialNinep(ctx, p, "")
	if err != nil {
		return nil, err
	}
	defer fsys.Close()
	have, err := readNinepMeta(fsys, dir)
	if err != nil {
		return nil, ninepStatus(err, "read metadata of volume directory %s on 9P server %s", dir, p.Server)
	}
	if have == nil {
		exists, err := ninepExists(fsys, dir)
		if err != nil {
			return nil, ninepStatus(err, "check %s/%s on 9P server %s", p.Export, dir, p.Server)
		}
		if exists {
			// A CreateVolume of the earlier scheme, retried: adopt the
			// volume it made, whose metadata is in this node's Root.
			if have = d.legacyNinepMeta(dir, p); have == nil {
				return nil, status.Errorf(codes.AlreadyExists,
					"name %q: %s/%s already exists on 9P server %s but was not created by this driver", want.Name, p.Export, dir, p.Server)
			}
		} else {
			have = want
		}
		if err := writeNinepMeta(fsys, dir, have); err != nil {
			return nil, ninepStatus(err, "write metadata of volume directory %s on 9P server %s", dir, p.Server)
		}
	}
	switch {
	case have.Name != want.Name:
		return nil, status.Errorf(codes.AlreadyExists, "name %q: its directory %s/%s on 9P server %s belongs to volume %q",
			want.Name, p.Export, dir, p.Server, have.Name)
	case have.Params != want.Params:
		return nil, status.Errorf(codes.AlreadyExists, "name %q: the volume exists with other parameters: %v",
			want.Name, have.Params.volumeContext())
	case !capacityFits(have.CapacityBytes, cr):
		return nil, status.Errorf(codes.AlreadyExists, "name %q: the volume exists with capacity %d bytes, outside capacity_range",
			want.Name, have.CapacityBytes)
	}
	if err := makeNinepDir(fsys, dir); err != nil {
		return nil, ninepStatus(err, "create volume directory %s/%s on 9P server %s", p.Export, dir, p.Server)
	}
	return have, nil
}

// legacyNinepMeta returns the metadata this node's Root holds for a 9P
// volume of the earlier scheme in directory dir of p's export, or nil.
func (d *Driver) legacyNinepMeta(dir string, p volumeParams) *volumeMeta {
	m, err := d.readMeta(dir)
	if err != nil || m == nil || m.Params.Backend != Backend9P || m.Params.Server != p.Server || m.Params.Export != p.Export {
		return nil
	}
	return m
}

// makeNinepDir makes a volume's directory, world-writable like a fresh
// file system's root. An existing directory is the volume made by an
// earlier try.
func makeNinepDir(fsys *ninep.FS, dir string) error {
	err := fsys.Mkdir(dir, 0o777)
	if errors.Is(err, syscall.EEXIST) {
		a, lerr := fsys.Lstat(dir)
		if lerr == nil && a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return nil
		}
		return fmt.Errorf("it exists and is not a directory")
	}
	if err != nil {
		return err
	}
	// The server may apply its umask to the mkdir.
	return fsys.Chmod(dir, 0o777)
}

// deleteNinepVolumeByRef is DeleteVolume of the 9P volume id, which names
// r. Without metadata for r.Dir the directory is not this driver's (or is
// already deleted) and is left alone.
func (d *Driver) deleteNinepVolumeByRef(ctx context.Context, id string, r ninepRef) error {
	p := volumeParams{Backend: Backend9P, Server: r.Server, Export: r.Export}
	fsys, err := d.ninepDial(ctx, d.ninepConfig(p, ""))
	if errors.Is(err, syscall.ENOENT) {
		klog.InfoS("The export of a 9P volume is gone; nothing to delete", "volumeID", id, "server", r.Server, "export", r.Export)
		return nil
	}
	if err != nil {
		return dialStatus(ctx, err, p, "")
	}
	defer fsys.Close()
	m, err := readNinepMeta(fsys, r.Dir)
	if err != nil {
		return ninepStatus(err, "read metadata of volume %s on 9P server %s", id, r.Server)
	}
	if m == nil {
		if ok, _ := ninepExists(fsys, r.Dir); ok {
			klog.InfoS("Not deleting a directory this driver did not create", "volumeID", id, "server", r.Server, "path", r.Export+"/"+r.Dir)
		}
		return nil
	}
	if got := ninepVolumeID(m.Params.Server, m.Params.Export, volumeIDForName(m.Name)); got != id {
		return status.Errorf(codes.FailedPrecondition,
			"volume %s: the metadata of %s/%s on 9P server %s describes volume %s (name %q); not deleting",
			id, r.Export, r.Dir, r.Server, got, m.Name)
	}
	if err := removeAll(fsys, r.Dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return ninepStatus(err, "delete volume %s on 9P server %s", id, r.Server)
	}
	if err := removeNinepMeta(fsys, r.Dir); err != nil {
		return ninepStatus(err, "delete metadata of volume %s on 9P server %s", id, r.Server)
	}
	return nil
}

// lookupNinepVolume returns the metadata of the 9P volume r names (nil if
// it has none) and whether its directory exists.
func (d *Driver) lookupNinepVolume(ctx context.Context, id string, r ninepRef) (*volumeMeta, bool, error) {
	p := volumeParams{Backend: Backend9P, Server: r.Server, Export: r.Export}
	fsys, err := d.dialNinep(ctx, p, "")
	if err != nil {
		return nil, false, err
	}
	defer fsys.Close()
	m, err := readNinepMeta(fsys, r.Dir)
	if err != nil {
		return nil, false, ninepStatus(err, "read metadata of volume %s on 9P server %s", id, r.Server)
	}
	exists, err := ninepExists(fsys, r.Dir)
	if err != nil {
		return nil, false, ninepStatus(err, "check volume %s on 9P server %s", id, r.Server)
	}
	return m, exists, nil
}

// ninepExists tells whether name exists on fsys.
func ninepExists(fsys *ninep.FS, name string) (bool, error) {
	_, err := fsys.Lstat(name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.ENOENT):
		return false, nil
	}
	return false, err
}

// ninepMetaPath is where the metadata of the volume in directory dir lives
// on the server, relative to the export. metaDirName starts with '.',
// which no directory of a volume may.
func ninepMetaPath(dir string) string { return metaDirName + "/" + dir + ".json" }

// readNinepMeta returns the metadata of the volume in directory dir, or
// nil if there is none.
func readNinepMeta(fsys *ninep.FS, dir string) (*volumeMeta, error) {
	name := ninepMetaPath(dir)
	a, err := fsys.Lstat(name)
	if errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if a.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := fsys.Open(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, maxMetaSize+1)
	var n int
	for n < len(buf) {
		k, err := f.ReadAt(buf[n:], int64(n))
		n += k
		if err == io.EOF || k == 0 && err == nil {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if n > maxMetaSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxMetaSize)
	}
	var m volumeMeta
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return &m, nil
}

// writeNinepMeta replaces the metadata of the volume in directory dir so
// that a crash leaves the old or the new content: a temporary file,
// written and synced, renamed over the old one (atomic on the server).
func writeNinepMeta(fsys *ninep.FS, dir string, m *volumeMeta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := fsys.Mkdir(metaDirName, 0o700); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	if a, err := fsys.Lstat(metaDirName); err != nil {
		return err
	} else if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("%s is not a directory", metaDirName)
	}
	// A random suffix keeps two controllers writing at once apart.
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmp := metaDirName + "/.tmp-" + dir + "-" + hex.EncodeToString(suffix[:])
	f, err := fsys.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync(false)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, ninepMetaPath(dir), 0)
	}
	if err != nil {
		fsys.Unlink(tmp)
		return err
	}
	return nil
}

// removeNinepMeta removes the metadata of the volume in directory dir; a
// missing file is not an error.
func removeNinepMeta(fsys *ninep.FS, dir string) error {
	if err := fsys.Unlink(ninepMetaPath(dir)); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

// ninepStatus maps a failed file operation on a 9P server: a server that
// stays away makes the client fail with EIO (or a timeout), which is
// Unavailable; anything else is Internal.
func ninepStatus(err error, format string, a ...any) error {
	code := codes.Internal
	var ne interface{ Timeout() bool }
	if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) && ne.Timeout() {
		code = codes.Unavailable
	}
	return status.Errorf(code, "%s: %v", fmt.Sprintf(format, a...), err)
}
