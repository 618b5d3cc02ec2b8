// ociarchive writes a one-layer OCI image archive (an OCI image layout in a
// tar, as `ctr images import` reads it) from files on disk, with no registry
// and no container engine. The output is reproducible: same inputs, same
// digests.
//
//	ociarchive -out pause.tar -name modeldeploy.local/pause:v1 -entrypoint /pause -user 65535 /pause=path/to/pause
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func main() {
	out := flag.String("out", "", "the archive to write")
	name := flag.String("name", "", "the image reference, e.g. modeldeploy.local/pause:v1")
	entrypoint := flag.String("entrypoint", "", "the entrypoint, space-separated")
	user := flag.String("user", "", "the user the process runs as")
	port := flag.String("port", "", "an exposed TCP port (documentation only)")
	flag.Parse()
	if *out == "" || *name == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ociarchive -out FILE -name REF [-entrypoint CMD] [-user UID] /path/in/image=file...")
		os.Exit(2)
	}
	files := flag.Args()
	sort.Strings(files)
	epoch := time.Unix(0, 0)

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, spec := range files {
		dst, src, ok := strings.Cut(spec, "=")
		if !ok {
			fail(fmt.Errorf("%q: want /path/in/image=file", spec))
		}
		data, err := os.ReadFile(src)
		fail(err)
		info, err := os.Stat(src)
		fail(err)
		hdr := &tar.Header{Name: strings.TrimPrefix(dst, "/"), Mode: int64(info.Mode().Perm()), Size: int64(len(data)),
			ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		fail(tw.WriteHeader(hdr))
		_, err = tw.Write(data)
		fail(err)
	}
	fail(tw.Close())

	cfg := map[string]any{"Env": []string{"PATH=/"}}
	if *entrypoint != "" {
		cfg["Entrypoint"] = strings.Fields(*entrypoint)
	}
	if *user != "" {
		cfg["User"] = *user
	}
	if *port != "" {
		cfg["ExposedPorts"] = map[string]any{*port + "/tcp": map[string]any{}}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": epoch.UTC().Format(time.RFC3339),
		"config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer.Bytes())}},
	})
	fail(err)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(config), Size: len(config)},
		"layers": []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest(layer.Bytes()), Size: layer.Len()}},
	})
	fail(err)
	tag := *name
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: len(manifest),
			Annotations: map[string]string{"io.containerd.image.name": *name, "org.opencontainers.image.ref.name": tag}}},
	})
	fail(err)

	f, err := os.Create(*out + ".tmp")
	fail(err)
	aw := tar.NewWriter(f)
	put := func(path string, data []byte) {
		fail(aw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}))
		_, err := aw.Write(data)
		fail(err)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for _, blob := range [][]byte{layer.Bytes(), config, manifest} {
		put("blobs/sha256/"+strings.TrimPrefix(digest(blob), "sha256:"), blob)
	}
	fail(aw.Close())
	fail(f.Close())
	fail(os.Rename(*out+".tmp", *out))
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociarchive:", err)
		os.Exit(1)
	}
}
