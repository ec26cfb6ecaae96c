package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// metaDirName is the directory under Root that holds one metadata file per
// volume. It starts with '.', which no volume ID may, so it is never a volume.
const metaDirName = ".goferfs-meta"

// volumeMeta is what the controller remembers about a volume it created.
type volumeMeta struct {
	// Name is the CreateVolume name the ID was derived from.
	Name          string       `json:"name"`
	CapacityBytes int64        `json:"capacityBytes"`
	Params        volumeParams `json:"params"`
}

func (d *Driver) metaPath(id string) string {
	return filepath.Join(d.root, metaDirName, id+".json")
}

// readMeta returns the metadata of volume id, or nil if there is none.
func (d *Driver) readMeta(id string) (*volumeMeta, error) {
	var m volumeMeta
	ok, err := readJSON(d.metaPath(id), &m)
	if !ok {
		return nil, err
	}
	return &m, nil
}

func (d *Driver) writeMeta(id string, m *volumeMeta) error {
	return writeJSON(d.metaPath(id), m)
}

func (d *Driver) removeMeta(id string) error {
	return removeFile(d.metaPath(id))
}

// readJSON decodes the file at path into v. It returns false and no error
// if the file does not exist.
func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", path, err)
	}
	return true, nil
}

// writeJSON replaces the file at path with v's encoding so that a crash
// leaves either the old or the new content: write a temporary file, fsync
// it, rename it over path and fsync the directory.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeFile removes path durably; a missing file is not an error.
func removeFile(path string) error {
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
