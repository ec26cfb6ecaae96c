// Command imagetar writes a one-layer container image as a docker-save
// tarball (what `docker save` produces and `ctr images import` reads) from
// files on this machine. It lets the local cluster run images without a
// registry or a Docker engine.
//
//	imagetar -o busybox.tar -tag busybox:local \
//	  -file /bin/busybox=/bin/busybox -link /bin/sh=busybox -cmd sh
//
// The layer's timestamps and owners are fixed, so the same files give the
// same image ID.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// pairs is a repeatable -flag DST=SRC (or LINK=TARGET) option.
type pairs [][2]string

func (p *pairs) String() string { return fmt.Sprint(*p) }

func (p *pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("%q: want NAME=VALUE", v)
	}
	*p = append(*p, [2]string{k, val})
	return nil
}

// list is a repeatable string option.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	out, tag        string
	files, links    pairs
	dirs            list
	entrypoint, cmd list
	env             list
}

func main() {
	var o options
	flag.StringVar(&o.out, "o", "", "output tarball (required)")
	flag.StringVar(&o.tag, "tag", "", "image reference, e.g. busybox:local (required)")
	flag.Var(&o.files, "file", "IMAGEPATH=HOSTPATH: copy a host file into the image with its mode (repeatable)")
	flag.Var(&o.links, "link", "IMAGEPATH=TARGET: a symlink (repeatable)")
	flag.Var(&o.dirs, "dir", "IMAGEPATH: an empty directory, mode 1777 (repeatable)")
	flag.Var(&o.entrypoint, "entrypoint", "one entrypoint argument (repeatable, in order)")
	flag.Var(&o.cmd, "cmd", "one cmd argument (repeatable, in order)")
	flag.Var(&o.env, "env", "NAME=VALUE in the image's environment (repeatable)")
	flag.Parse()
	if o.out == "" || o.tag == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := write(&o); err != nil {
		fmt.Fprintf(os.Stderr, "imagetar: %v\n", err)
		os.Exit(1)
	}
}

// epoch is every entry's timestamp, so rebuilding gives the same digests.
var epoch = time.Unix(0, 0)

// layer returns the uncompressed layer tar of o's files, links and dirs.
func layer(o *options) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	made := map[string]bool{}
	// A second entry for a path would silently replace the first when
	// unpacked (a symlink over the binary it points to, say).
	seen := map[string]bool{}
	claim := func(p string) error {
		if seen[p] {
			return fmt.Errorf("%s is given twice", p)
		}
		seen[p] = true
		return nil
	}
	// Parents first: some unpackers refuse entries whose directory is missing.
	mkdirs := func(p string) error {
		var parts []string
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if made[parts[i]] {
				continue
			}
			made[parts[i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(parts[i], "/") + "/",
				Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range o.dirs {
		d = path.Clean("/" + d)
		if err := mkdirs(d + "/x"); err != nil {
			return nil, err
		}
		// mkdirs made d with 0755; temp-style directories need 1777.
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/",
			Mode: 0o1777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range o.files {
		dst := path.Clean("/" + f[0])
		if err := claim(dst); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(f[1])
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(f[1])
		if err != nil {
			return nil, err
		}
		if err := mkdirs(dst); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"),
			Mode: int64(fi.Mode().Perm()), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for _, l := range o.links {
		dst := path.Clean("/" + l[0])
		if err := claim(dst); err != nil {
			return nil, err
		}
		if err := mkdirs(dst); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(dst, "/"),
			Linkname: l[1], Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// write builds the image and writes the docker-save tarball: the layer,
// the image config (naming the layer's diff ID), and manifest.json.
func write(o *options) error {
	l, err := layer(o)
	if err != nil {
		return err
	}
	layerID := digest(l)
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, o.env...)
	sort.Strings(env[1:])
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config": map[string]any{
			"Env":        env,
			"Entrypoint": nilIfEmpty(o.entrypoint),
			"Cmd":        nilIfEmpty(o.cmd),
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
	})
	if err != nil {
		return err
	}
	configName := digest(config) + ".json"
	layerName := layerID + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{o.tag},
		"Layers":   []string{layerName},
	}})
	if err != nil {
		return err
	}

	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
			Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := io.Copy(tw, bytes.NewReader(data))
		return err
	}
	err = add(layerName, l)
	if err == nil {
		err = add(configName, config)
	}
	if err == nil {
		err = add("manifest.json", manifest)
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func nilIfEmpty(l list) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}
