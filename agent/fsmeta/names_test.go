package fsmeta

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseIDFile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[uint32]string
	}{
		{"empty", "", map[uint32]string{}},
		{"passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
			map[uint32]string{0: "root", 1000: "alice"}},
		{"group", "root:x:0:\nwheel:x:10:alice,bob\n", map[uint32]string{0: "root", 10: "wheel"}},
		{"no trailing newline", "bob:x:7:7", map[uint32]string{7: "bob"}},
		{"first name wins", "a:x:5:5\nb:x:5:5\n", map[uint32]string{5: "a"}},
		{"skips junk", "# comment\n\n+nis\n-x\n:x:1:1\nnoid:x::\nneg:x:-1:0\nbig:x:4294967296:0\nshort:x\nok:x:4294967295:0\n",
			map[uint32]string{4294967295: "ok"}},
		{"crlf and spaces are data", "sp ace:x:3:3\r\n", map[uint32]string{3: "sp ace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseIDFile(strings.NewReader(tt.in))
			if !maps.Equal(got, tt.want) {
				t.Errorf("parseIDFile(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseIDFile(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash\n")
	f.Add("wheel:x:10:alice,bob\n#c\n+\n")
	f.Fuzz(func(t *testing.T, in string) {
		for id, name := range parseIDFile(strings.NewReader(in)) {
			if name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("bad name %q for id %d", name, id)
			}
		}
	})
}

func TestNameCache(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte("root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte("root:x:0:\nstaff:x:50:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var userLookups, groupLookups atomic.Int32
	c := NewNameCache()
	c.passwdPath, c.groupPath = passwd, group
	c.lookupUser = func(id uint32) string {
		userLookups.Add(1)
		if id == 2000 {
			return "ldapuser"
		}
		return ""
	}
	c.lookupGroup = func(uint32) string { groupLookups.Add(1); return "" }

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				checkName(t, "user 0", c.User(0), "root")
				checkName(t, "user 1000", c.User(1000), "alice")
				checkName(t, "user 2000", c.User(2000), "ldapuser")
				checkName(t, "user 3000", c.User(3000), "")
				checkName(t, "group 50", c.Group(50), "staff")
				checkName(t, "group 1000", c.Group(1000), "")
			}
		})
	}
	wg.Wait()
	// Concurrent first misses may race to look up; afterwards they are cached.
	if n := userLookups.Load(); n < 2 || n > 16 {
		t.Errorf("%d fallback user lookups, want 2 (at most one per goroutine per id)", n)
	}
	before := userLookups.Load()
	c.User(2000)
	c.User(3000)
	if userLookups.Load() != before {
		t.Error("cached misses were looked up again")
	}
	if n := groupLookups.Load(); n < 1 || n > 8 {
		t.Errorf("%d fallback group lookups, want 1", n)
	}
}

func checkName(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
