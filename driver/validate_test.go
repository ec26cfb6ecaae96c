package driver

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// wantStatus fails t unless err carries code want and, when want is not OK,
// a message containing every string in mention.
func wantStatus(t *testing.T, err error, want codes.Code, mention ...string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want {
		t.Fatalf("got %v (%q), want %v", st.Code(), st.Message(), want)
	}
	for _, m := range mention {
		if !strings.Contains(st.Message(), m) {
			t.Errorf("message %q does not mention %q", st.Message(), m)
		}
	}
}

// Volume IDs can never name a path outside Root.
func TestVolumeIDNeverEscapesRoot(t *testing.T) {
	for _, tc := range []struct {
		id       string
		wantCode codes.Code
	}{
		{"pvc-0b6f1f9e-6b8a-4f7e-9a44-2f4a3c1d2e10", codes.OK},
		{"a.b_c-D9", codes.OK},
		{strings.Repeat("a", 128), codes.OK},
		{"", codes.InvalidArgument},
		{".", codes.InvalidArgument},
		{"..", codes.InvalidArgument},
		{"../etc", codes.InvalidArgument},
		{"a/b", codes.InvalidArgument},
		{"/etc", codes.InvalidArgument},
		{"a\x00b", codes.InvalidArgument},
		{".goferfs-meta", codes.InvalidArgument},
		{".hidden", codes.InvalidArgument},
		{strings.Repeat("a", 129), codes.InvalidArgument},
		{strings.Repeat("a", 300), codes.InvalidArgument},
		{"a b", codes.InvalidArgument},
		{"a\\b", codes.InvalidArgument},
		{"vol\u00e9", codes.InvalidArgument},
	} {
		t.Run(tc.id, func(t *testing.T) {
			wantStatus(t, checkVolumeID(tc.id), tc.wantCode)
		})
	}
}

// A CreateVolume name maps to the same valid ID every time.
func TestVolumeIDForNameIsDeterministicAndValid(t *testing.T) {
	for _, name := range []string{
		"pvc-1", "..", "../../etc", "a/b", "a\x00b", ".hidden", strings.Repeat("x", 300), "naïve",
	} {
		id := volumeIDForName(name)
		if err := checkVolumeID(id); err != nil {
			t.Errorf("volumeIDForName(%q) = %q, invalid: %v", name, id, err)
		}
		if again := volumeIDForName(name); again != id {
			t.Errorf("volumeIDForName(%q) gave %q then %q", name, id, again)
		}
	}
	if id := volumeIDForName("pvc-1"); id != "pvc-1" {
		t.Errorf("a valid name should be its own ID, got %q", id)
	}
	if volumeIDForName("a/b") == volumeIDForName("a_b") {
		t.Error("different names share an ID")
	}
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		name     string
		params   map[string]string
		want     volumeParams
		wantCode codes.Code
		mention  []string
	}{
		{name: "defaults", want: volumeParams{Mode: datapath.Exclusive}},
		{name: "shared", params: map[string]string{"interopMode": "shared"}, want: volumeParams{Mode: datapath.Shared}},
		{name: "writethrough with page cache forced",
			params: map[string]string{"interopMode": "writethrough", "forcePageCache": "true"},
			want:   volumeParams{Mode: datapath.WriteThrough, ForcePageCache: true}},
		{name: "kubernetes metadata is ignored",
			params: map[string]string{"csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pv/name": "pvc-1"},
			want:   volumeParams{Mode: datapath.Exclusive}},
		// The external-provisioner writes this into every PV's volume
		// attributes, so NodeStageVolume sees it in the volume context.
		{name: "provisioner identity in the volume context is ignored",
			params: map[string]string{"interopMode": "shared", "storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-goferfs.csi.dev"},
			want:   volumeParams{Mode: datapath.Shared}},
		{name: "unknown parameter", params: map[string]string{"cacheSize": "1G"},
			wantCode: codes.InvalidArgument, mention: []string{`"cacheSize"`, "interopMode", "forcePageCache"}},
		{name: "bad mode", params: map[string]string{"interopMode": "Shared"},
			wantCode: codes.InvalidArgument, mention: []string{"interopMode", `"Shared"`, "exclusive, writethrough, shared"}},
		{name: "bad bool", params: map[string]string{"forcePageCache": "yes"},
			wantCode: codes.InvalidArgument, mention: []string{"forcePageCache", `"yes"`, "true, false"}},
		{name: "bool is spelled out", params: map[string]string{"forcePageCache": "1"},
			wantCode: codes.InvalidArgument, mention: []string{"forcePageCache"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseParams("parameters", tc.params)
			mention := tc.mention
			if tc.wantCode != codes.OK {
				mention = append(mention, "parameters:")
			}
			wantStatus(t, err, tc.wantCode, mention...)
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The volume context round-trips through parseParams.
func TestVolumeContextRoundTrip(t *testing.T) {
	for _, p := range []volumeParams{{Mode: datapath.Exclusive}, {Mode: datapath.Shared, ForcePageCache: true}} {
		got, err := parseParams("volume_context", p.volumeContext())
		if err != nil || got != p {
			t.Errorf("round trip of %+v gave %+v, %v", p, got, err)
		}
	}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
}

// Multi-node writers need shared mode; every other access mode works in
// every mode; only mount access with an empty fs_type is served.
func TestCheckCapability(t *testing.T) {
	exclusive := volumeParams{Mode: datapath.Exclusive}
	shared := volumeParams{Mode: datapath.Shared}
	withMount := func(m *csi.VolumeCapability_MountVolume) *csi.VolumeCapability {
		c := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
		c.AccessType = &csi.VolumeCapability_Mount{Mount: m}
		return c
	}
	for _, tc := range []struct {
		name     string
		cap      *csi.VolumeCapability
		params   volumeParams
		wantCode codes.Code
		mention  []string
	}{
		{"missing", nil, exclusive, codes.InvalidArgument, []string{"volume_capability is required"}},
		{"no access mode", &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}},
			exclusive, codes.InvalidArgument, []string{"access_mode"}},
		{"no access type", &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}},
			exclusive, codes.InvalidArgument, []string{"access_type"}},
		{"block", &csi.VolumeCapability{
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		}, exclusive, codes.InvalidArgument, []string{"block"}},
		{"fs_type", withMount(&csi.VolumeCapability_MountVolume{FsType: "ext4"}), exclusive, codes.InvalidArgument, []string{`"ext4"`}},
		{"unknown mount flag", withMount(&csi.VolumeCapability_MountVolume{MountFlags: []string{"uid=0"}}), exclusive,
			codes.InvalidArgument, []string{`"uid=0"`}},
		{"bind flags", withMount(&csi.VolumeCapability_MountVolume{MountFlags: []string{"noexec", "ro"}}), exclusive, codes.OK, nil},
		{"multi-node multi-writer without shared", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), exclusive,
			codes.InvalidArgument, []string{"MULTI_NODE_MULTI_WRITER needs interopMode: shared"}},
		{"multi-node single-writer without shared", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER),
			volumeParams{Mode: datapath.WriteThrough}, codes.InvalidArgument, []string{"MULTI_NODE_SINGLE_WRITER needs interopMode: shared"}},
		{"multi-node multi-writer with shared", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), shared, codes.OK, nil},
		{"multi-node reader in exclusive", mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), exclusive, codes.OK, nil},
		{"single-node single-writer in exclusive", mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER), exclusive, codes.OK, nil},
		{"single-node multi-writer in exclusive", mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER), exclusive, codes.OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, checkCapability("volume_capability", tc.cap, tc.params), tc.wantCode, tc.mention...)
		})
	}
}
