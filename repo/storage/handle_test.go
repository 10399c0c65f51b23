package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestHandleValidate(t *testing.T) {
	tests := []struct {
		h  Handle
		ok bool
	}{
		{Handle{KindPacks, strings.Repeat("ab", 32)}, true},
		{Handle{KindConfig, "config"}, true},
		{Handle{KindLocks, "a.b_c-D9"}, true},
		{Handle{KindKeys, strings.Repeat("x", MaxNameLen)}, true},
		{Handle{KindKeys, strings.Repeat("x", MaxNameLen+1)}, false},
		{Handle{KindKeys, ""}, false},
		{Handle{KindKeys, "."}, false},
		{Handle{KindKeys, ".."}, false},
		{Handle{KindKeys, ".tmp-x"}, false},
		{Handle{KindKeys, "a/b"}, false},
		{Handle{KindKeys, "a\\b"}, false},
		{Handle{KindKeys, "a b"}, false},
		{Handle{KindKeys, "ä"}, false},
		{Handle{KindKeys, "a\x00"}, false},
		{Handle{"", "x"}, false},
		{Handle{"bogus", "x"}, false},
		{Handle{"../packs", "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.h.String(), func(t *testing.T) {
			err := tt.h.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidHandle) {
				t.Fatalf("Validate() = %v, want ErrInvalidHandle", err)
			}
		})
	}
}
