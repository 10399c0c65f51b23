package snapshot

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error about a malformed or unacceptable
// snapshot record.
var ErrInvalid = errors.New("invalid snapshot record")

// Version is the only Public.Version this package reads and writes.
const Version = 1

// Limits that keep a record small enough to list thousands of them and
// that bound what a hostile record can make a reader allocate.
const (
	MaxLabelLen   = 255      // Host, each tag, HostKey, Method, Program
	MaxTags       = 256      // tags per snapshot
	MaxStringLen  = 64 << 10 // each path, exclude, error, hostname, username
	MaxSealedLen  = 64 << 20 // Public.Sealed
	MaxDetailsLen = 64 << 20 // encoded Details; the agent must cap Errors to stay below
	MaxPublicLen  = MaxSealedLen*4/3 + 1<<20
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports whether p may be stored: known Version, non-zero Time,
// a Host usable as a directory name, clean tags, and a non-empty Sealed.
func (p *Public) Validate() error {
	if p.Version != Version {
		return invalid("unknown version %d (this costor reads %d)", p.Version, Version)
	}
	if err := ValidateHost(p.Host); err != nil {
		return err
	}
	if p.Time.IsZero() {
		return invalid("time is zero")
	}
	if y := p.Time.Year(); y < 1 || y > 9999 {
		return invalid("time %v outside years 1 to 9999", p.Time)
	}
	if len(p.Tags) > MaxTags {
		return invalid("%d tags, at most %d allowed", len(p.Tags), MaxTags)
	}
	for i, tag := range p.Tags {
		if tag == "" {
			return invalid("tag %d is empty", i)
		}
		if reason := labelProblem(tag); reason != "" {
			return invalid("tag %q %s", tag, reason)
		}
	}
	if p.HostKey != "" {
		if reason := labelProblem(p.HostKey); reason != "" {
			return invalid("host key name %q %s", p.HostKey, reason)
		}
	}
	if len(p.Sealed) == 0 {
		return invalid("sealed details are empty")
	}
	if len(p.Sealed) > MaxSealedLen {
		return invalid("sealed details are %d bytes, at most %d allowed", len(p.Sealed), MaxSealedLen)
	}
	return nil
}

// ValidateHost reports whether host can name a host: it appears as a
// directory name in the mount view and in server URLs, so it must be a
// non-empty UTF-8 string without '/' or control characters, and not "." or
// "..".
func ValidateHost(host string) error {
	switch {
	case host == "":
		return invalid("host is empty")
	case host == "." || host == "..":
		return invalid("host %q is reserved", host)
	case strings.ContainsRune(host, '/'):
		return invalid("host %q contains '/'", host)
	}
	if reason := labelProblem(host); reason != "" {
		return invalid("host %q %s", host, reason)
	}
	return nil
}

// labelProblem checks a short human-readable string.
func labelProblem(s string) string {
	if len(s) > MaxLabelLen {
		return fmt.Sprintf("is %d bytes long, at most %d allowed", len(s), MaxLabelLen)
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "contains a control character"
	}
	return ""
}

// Validate reports whether d may be stored: at least one path, every path
// absolute, clean and slash-separated, a root tree, and sane sizes.
func (d *Details) Validate() error {
	if len(d.Paths) == 0 {
		return invalid("no paths")
	}
	for i, p := range d.Paths {
		if err := stringProblem("path", i, p); err != nil {
			return err
		}
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			return invalid("path %q is not absolute and clean", p)
		}
		if strings.IndexByte(p, 0) >= 0 {
			return invalid("path %q contains a NUL byte", p)
		}
	}
	if d.Tree.IsNull() {
		return invalid("no root tree")
	}
	if len(d.Hostname) > MaxStringLen || len(d.Username) > MaxStringLen {
		return invalid("hostname or username longer than %d bytes", MaxStringLen)
	}
	for i, e := range d.Excludes {
		if err := stringProblem("exclude", i, e); err != nil {
			return err
		}
	}
	if reason := labelProblem(d.Method); reason != "" {
		return invalid("method %q %s", d.Method, reason)
	}
	if reason := labelProblem(d.Program); reason != "" {
		return invalid("program %q %s", d.Program, reason)
	}
	if d.Stats.Duration < 0 {
		return invalid("negative duration %v", d.Stats.Duration)
	}
	for i, e := range d.Errors {
		if err := stringProblem("error", i, e); err != nil {
			return err
		}
	}
	return nil
}

// stringProblem checks one entry of a list of arbitrary byte strings.
func stringProblem(what string, i int, s string) error {
	if s == "" {
		return invalid("%s %d is empty", what, i)
	}
	if len(s) > MaxStringLen {
		return invalid("%s %d is %d bytes long, at most %d allowed", what, i, len(s), MaxStringLen)
	}
	return nil
}
