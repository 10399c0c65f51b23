package vss

import (
	"context"
	"strings"
	"testing"
)

const shadow7 = `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7`

func TestMapPath(t *testing.T) {
	volumes := []volumeMap{
		{mountPoint: `C:\`, device: shadow7},
		{mountPoint: `C:\mnt\data\`, device: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy8`},
		{mountPoint: `D:\`, device: `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy9\`},
	}
	tests := []struct{ in, want string }{
		{`C:\Users\a\x`, shadow7 + `\Users\a\x`},
		{`c:\users\a\x`, shadow7 + `\users\a\x`},
		{`C:/Users/a/x`, shadow7 + `\Users\a\x`},
		{`C:\Users\a\`, shadow7 + `\Users\a`},
		{`C:\Users\\a`, shadow7 + `\Users\a`},
		{`C:\`, shadow7 + `\`},
		{`C:`, shadow7 + `\`},
		{`\\?\C:\Users`, shadow7 + `\Users`},
		{`C:\mnt\data\db\f.mdf`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy8\db\f.mdf`},
		{`C:\mnt\data`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy8\`},
		{`C:\mnt\database`, shadow7 + `\mnt\database`},
		{`D:\x`, `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy9\x`},
		{`E:\x`, ""},
		{`\\server\share\x`, ""},
		{`Users\a`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := mapPath(volumes, tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("mapPath(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("mapPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestViewReleaseOnce(t *testing.T) {
	calls := 0
	v := &View{
		volumes: []volumeMap{{mountPoint: `C:\`, device: shadow7}},
		release: func(context.Context) error { calls++; return nil },
	}
	if p, err := v.Path(`C:\a`); err != nil || p != shadow7+`\a` {
		t.Fatalf("Path = %q, %v", p, err)
	}
	for i := 0; i < 2; i++ {
		if err := v.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Errorf("release ran %d times", calls)
	}
	if _, err := v.Path(`C:\a`); err == nil {
		t.Error("Path after Release: no error")
	}
	var nilView *View
	if err := nilView.Release(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestHresultError(t *testing.T) {
	for hr, want := range map[uint32]string{
		hrAccessDenied:            "0x80070005 (access denied); run costor as Administrator",
		vssESnapshotSetInProgress: "another backup",
		vssEInsufficientStorage:   "vssadmin resize shadowstorage",
		0x80004005:                "0x80004005",
	} {
		if got := (&hresultError{"DoSnapshotSet", hr}).Error(); !strings.HasPrefix(got, "DoSnapshotSet failed: HRESULT") || !strings.Contains(got, want) {
			t.Errorf("hresult 0x%08X: %q lacks %q", hr, got, want)
		}
	}
}
