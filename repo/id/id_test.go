package id

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	h := Hash([]byte("costor"))
	cases := []struct {
		in      string
		want    ID
		wantErr bool
	}{
		{h.String(), h, false},
		{strings.ToUpper(h.String()), h, false},
		{h.String()[:63], ID{}, true},
		{h.String() + "0", ID{}, true},
		{strings.Repeat("g", 64), ID{}, true},
		{"", ID{}, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("Parse(%q): err = %v, want error %v", c.in, err, c.wantErr)
		}
		if err == nil && got != c.want {
			t.Errorf("Parse(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if h.Short() != h.String()[:ShortLen] || len(h.Short()) != 8 {
		t.Errorf("Short() = %q", h.Short())
	}
	if !(ID{}).IsNull() || h.IsNull() {
		t.Error("IsNull wrong")
	}
	var back ID
	text, _ := h.MarshalText()
	if err := back.UnmarshalText(text); err != nil || back != h {
		t.Errorf("text round trip: %v, %s", err, back)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Hash(nil).String())
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		i, err := Parse(s)
		if err == nil && !strings.EqualFold(i.String(), s) {
			t.Fatalf("Parse(%q) accepted, prints as %s", s, i)
		}
	})
}
