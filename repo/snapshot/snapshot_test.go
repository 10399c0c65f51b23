package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func goldenPublic() *Public {
	return &Public{
		Version: Version,
		Host:    "büro-pc-07",
		Time:    time.Date(2024, 3, 31, 1, 59, 58, 123456789, time.FixedZone("", 2*3600)),
		Tags:    []string{"daily", "db <dump> & more"},
		Parent:  id.Hash([]byte("parent")),
		HostKey: "9f86d081884c7d65",
		Sealed:  []byte{0x00, 0xff, 0x10, 0x80, 'x'},
	}
}

func goldenDetails() *Details {
	return &Details{
		Paths:    []string{"/home/alice", "/srv/\xff\xfedata", "/etc/new\nline"},
		Tree:     id.Hash([]byte("tree")),
		Hostname: "büro-pc-07.example",
		Username: "root",
		Excludes: []string{"*.tmp", "/home/*/.cache", "\xc3\x28"},
		Method:   "btrfs",
		Program:  "costor 0.1.0",
		Stats: Stats{Files: 12345, Dirs: 678, Bytes: 1 << 40, FilesNew: 10, FilesChanged: 5,
			FilesSame: 12330, BlobsAdded: 99, BytesAdded: 1 << 33, Duration: 90*time.Minute + 1},
		Errors: []string{"/srv/\xffsecret: permission denied"},
	}
}

func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoding differs from %s (run go test -update if the format change is intended)\ngot  %q\nwant %q", path, got, want)
	}
	return want
}

func equalPublic(a, b *Public) bool {
	return a.Version == b.Version && a.Host == b.Host && a.Time.Equal(b.Time) &&
		reflect.DeepEqual(a.Tags, b.Tags) && a.Parent == b.Parent && a.HostKey == b.HostKey &&
		bytes.Equal(a.Sealed, b.Sealed)
}

func TestPublicGolden(t *testing.T) {
	p := goldenPublic()
	b, err := EncodePublic(p)
	if err != nil {
		t.Fatal(err)
	}
	want := golden(t, "public-v1.golden", b)
	dec, err := DecodePublic(want)
	if err != nil {
		t.Fatal(err)
	}
	if !equalPublic(dec, p) {
		t.Errorf("decoded %+v, want %+v", dec, p)
	}
	if _, off := dec.Time.Zone(); off != 2*3600 {
		t.Errorf("zone offset %d lost", off)
	}
}

func TestDetailsGolden(t *testing.T) {
	d := goldenDetails()
	b, err := EncodeDetails(d)
	if err != nil {
		t.Fatal(err)
	}
	want := golden(t, "details-v1.golden", b)
	dec, err := DecodeDetails(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, d) {
		t.Errorf("decoded %+v, want %+v", dec, d)
	}
}

func TestPublicRoundTripMinimal(t *testing.T) {
	p := &Public{Version: 1, Host: "h", Time: time.Unix(1, 0).UTC(), Sealed: []byte{1}}
	b, err := EncodePublic(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "parent") || strings.Contains(string(b), "tags") {
		t.Errorf("empty parent/tags should be omitted: %s", b)
	}
	dec, err := DecodePublic(b)
	if err != nil || !equalPublic(dec, p) {
		t.Fatalf("round trip: %v, %+v", err, dec)
	}
}

func TestPublicInvalid(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Public)
		want   string
	}{
		{"version 0", func(p *Public) { p.Version = 0 }, "unknown version 0"},
		{"version 2", func(p *Public) { p.Version = 2 }, "unknown version 2"},
		{"empty host", func(p *Public) { p.Host = "" }, "host is empty"},
		{"host slash", func(p *Public) { p.Host = "a/b" }, "'/'"},
		{"host dotdot", func(p *Public) { p.Host = ".." }, "reserved"},
		{"host newline", func(p *Public) { p.Host = "a\nb" }, "control"},
		{"host DEL", func(p *Public) { p.Host = "a\x7f" }, "control"},
		{"host not utf-8", func(p *Public) { p.Host = "\xff" }, "UTF-8"},
		{"host too long", func(p *Public) { p.Host = strings.Repeat("h", 256) }, "at most 255"},
		{"zero time", func(p *Public) { p.Time = time.Time{} }, "time is zero"},
		{"year 10000", func(p *Public) { p.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "outside years"},
		{"empty tag", func(p *Public) { p.Tags = []string{"a", ""} }, "tag 1 is empty"},
		{"tag not utf-8", func(p *Public) { p.Tags = []string{"\xfe"} }, "UTF-8"},
		{"tag tab", func(p *Public) { p.Tags = []string{"a\tb"} }, "control"},
		{"too many tags", func(p *Public) { p.Tags = make([]string, MaxTags+1) }, "tags, at most"},
		{"host key control", func(p *Public) { p.HostKey = "k\x00" }, "control"},
		{"no sealed", func(p *Public) { p.Sealed = nil }, "sealed details are empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := goldenPublic()
			tc.modify(p)
			_, err := EncodePublic(p)
			checkInvalid(t, err, tc.want)
			// The same record forced onto disk must be refused on read.
			if b, err := json.Marshal(publicJSON{Version: p.Version, Host: p.Host, Time: p.Time,
				Tags: p.Tags, HostKey: p.HostKey, Sealed: p.Sealed}); err == nil && utf8OK(p) {
				_, err := DecodePublic(b)
				checkInvalid(t, err, tc.want)
			}
		})
	}
}

// utf8OK reports whether json.Marshal keeps p's strings intact, i.e.
// whether the crafted record really carries the invalid value.
func utf8OK(p *Public) bool {
	b, _ := json.Marshal(p)
	return !bytes.Contains(b, []byte(`\ufffd`))
}

func TestDecodePublicMalformed(t *testing.T) {
	valid, err := EncodePublic(goldenPublic())
	if err != nil {
		t.Fatal(err)
	}
	withField := func(field string) []byte {
		return append(append(bytes.TrimSuffix(valid, []byte("}")), []byte(","+field)...), '}')
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "invalid snapshot record"},
		{"not json", []byte("hello"), "invalid character"},
		{"array", []byte("[]"), "cannot unmarshal"},
		{"no version", []byte(`{"host":"h"}`), "no version"},
		{"version 2 with new fields", []byte(`{"version":2,"shiny":true}`), "unknown version 2"},
		{"unknown field", withField(`"paths":["/secret"]`), "unknown field"},
		{"trailing data", append(append([]byte{}, valid...), []byte(" {}")...), "after top-level value"},
		{"invalid utf-8", bytes.Replace(valid, []byte("büro"), []byte("b\xffro"), 1), "UTF-8"},
		{"null parent", bytes.Replace(valid, []byte(goldenPublic().Parent.String()), []byte(id.ID{}.String()), 1), "null ID"},
		{"short parent", bytes.Replace(valid, []byte(goldenPublic().Parent.String()), []byte("abcd"), 1), "64 hex"},
		{"bad sealed base64", bytes.Replace(valid, []byte(`"sealed":"`), []byte(`"sealed":"!`), 1), "base64"},
		{"bad time", bytes.Replace(valid, []byte(`"time":"2024`), []byte(`"time":"x2024`), 1), "time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePublic(tc.data)
			checkInvalid(t, err, tc.want)
		})
	}
}

func TestDetailsInvalid(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Details)
		want   string
	}{
		{"no paths", func(d *Details) { d.Paths = nil }, "no paths"},
		{"relative path", func(d *Details) { d.Paths = []string{"home/alice"} }, "not absolute"},
		{"unclean path", func(d *Details) { d.Paths = []string{"/home/../etc"} }, "not absolute and clean"},
		{"trailing slash", func(d *Details) { d.Paths = []string{"/home/"} }, "not absolute and clean"},
		{"double slash", func(d *Details) { d.Paths = []string{"//home"} }, "not absolute and clean"},
		{"empty path", func(d *Details) { d.Paths = []string{"/", ""} }, "path 1 is empty"},
		{"nul path", func(d *Details) { d.Paths = []string{"/a\x00b"} }, "NUL"},
		{"huge path", func(d *Details) { d.Paths = []string{"/" + strings.Repeat("a", MaxStringLen)} }, "at most"},
		{"no tree", func(d *Details) { d.Tree = id.ID{} }, "no root tree"},
		{"empty exclude", func(d *Details) { d.Excludes = []string{""} }, "exclude 0 is empty"},
		{"method control", func(d *Details) { d.Method = "lvm\n" }, "control"},
		{"program not utf-8", func(d *Details) { d.Program = "\xff" }, "UTF-8"},
		{"negative duration", func(d *Details) { d.Stats.Duration = -1 }, "duration"},
		{"empty error", func(d *Details) { d.Errors = []string{"x", ""} }, "error 1 is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := goldenDetails()
			tc.modify(d)
			_, err := EncodeDetails(d)
			checkInvalid(t, err, tc.want)
			_, err = DecodeDetails(craftDetails(d))
			checkInvalid(t, err, tc.want)
		})
	}
}

// craftDetails encodes d without validating it.
func craftDetails(d *Details) []byte {
	b := []byte{DetailsVersion}
	b = appendStrings(b, d.Paths)
	b = append(b, d.Tree[:]...)
	b = appendString(b, d.Hostname)
	b = appendString(b, d.Username)
	b = appendStrings(b, d.Excludes)
	b = appendString(b, d.Method)
	b = appendString(b, d.Program)
	for _, v := range statsFields(&d.Stats) {
		b = appendUvarint(b, *v)
	}
	b = appendUvarint(b, uint64(d.Stats.Duration))
	return appendStrings(b, d.Errors)
}

func TestDecodeDetailsMalformed(t *testing.T) {
	valid := craftDetails(goldenDetails())
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version 2", []byte{2}, "unknown details version 2"},
		{"trailing", append(append([]byte{}, valid...), 0), "1 trailing bytes"},
		{"huge path count", appendUvarint([]byte{DetailsVersion}, 1<<62), "declares"},
		{"huge string length", appendUvarint([]byte{DetailsVersion, 1}, 1<<40), "truncated"},
		{"non-minimal varint", []byte{DetailsVersion, 0x81, 0x00}, "non-minimal"},
		{"duration overflow", func() []byte {
			d := goldenDetails()
			d.Errors = nil
			b := craftDetails(d)
			b = b[:len(b)-1-len(appendUvarint(nil, uint64(d.Stats.Duration)))]
			b = appendUvarint(b, 1<<63)
			return append(b, 0)
		}(), "duration: overflows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDetails(tc.data)
			checkInvalid(t, err, tc.want)
		})
	}
	for i := range len(valid) {
		if _, err := DecodeDetails(valid[:i]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("DecodeDetails of the first %d of %d bytes: %v, want ErrInvalid", i, len(valid), err)
		}
	}
}

func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted an invalid record")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}
