package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readTar returns the regular files and the symlinks of a tarball.
func readTar(t *testing.T, data []byte) (files map[string][]byte, links map[string]string) {
	t.Helper()
	files, links = map[string][]byte{}, map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, links
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		}
	}
}

func TestWriteDockerSaveTarball(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := &options{
		out: filepath.Join(dir, "image.tar"), tag: "localhost/tool:local",
		files: pairs{{"/bin/tool", bin}}, links: pairs{{"/bin/sh", "tool"}},
		entrypoint: list{"/bin/tool"},
	}
	if err := write(o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	outer, _ := readTar(t, data)

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(outer["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != o.tag || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %+v", manifest)
	}
	var config struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(outer[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	layer := outer[manifest[0].Layers[0]]
	// Importers check the layer against the config's diff ID.
	if want := "sha256:" + digest(layer); len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != want {
		t.Errorf("diff_ids %v, want [%s]", config.RootFS.DiffIDs, want)
	}
	if len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/bin/tool" {
		t.Errorf("entrypoint %v", config.Config.Entrypoint)
	}
	files, links := readTar(t, layer)
	if string(files["bin/tool"]) != "#!/bin/true\n" || links["bin/sh"] != "tool" {
		t.Errorf("layer files %v links %v", files, links)
	}

	// Same inputs, same bytes: the image ID does not change between runs.
	again := *o
	again.out = filepath.Join(dir, "again.tar")
	if err := write(&again); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(again.out); !bytes.Equal(b, data) {
		t.Error("writing the same image twice gave different tarballs")
	}
}

func TestRefuseTwoEntriesForOnePath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := &options{
		out: filepath.Join(dir, "image.tar"), tag: "localhost/busybox:local",
		files: pairs{{"/bin/busybox", bin}}, links: pairs{{"/bin/busybox", "busybox"}},
	}
	if err := write(o); err == nil {
		t.Error("a symlink over the binary was accepted")
	}
}
