package lvm

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	major, minor int
	root         string // the directory of the filesystem that is mounted (bind mounts)
	mountPoint   string
	fstype       string
	source       string
}

// parseMountinfo decodes proc(5) mountinfo:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(data []byte) ([]mountEntry, error) {
	var entries []mountEntry
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := parseMountinfoLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n+1, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func parseMountinfoLine(line string) (mountEntry, error) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 6 || sep < 0 || sep+2 >= len(fields) {
		return mountEntry{}, fmt.Errorf("malformed: %q", line)
	}
	majS, minS, ok := strings.Cut(fields[2], ":")
	major, err1 := strconv.Atoi(majS)
	minor, err2 := strconv.Atoi(minS)
	if !ok || err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return mountEntry{}, fmt.Errorf("bad device number %q", fields[2])
	}
	return mountEntry{
		major:      major,
		minor:      minor,
		root:       unescapeOctal(fields[3]),
		mountPoint: unescapeOctal(fields[4]),
		fstype:     fields[sep+1],
		source:     unescapeOctal(fields[sep+2]),
	}, nil
}

// unescapeOctal undoes the kernel's \ooo escaping of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// within reports whether p is dir or below it; both are clean absolute paths.
func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// findMount returns the mount that holds the clean absolute path p: the
// longest mount point above it, and of several on one point the last, which
// hides the others.
func findMount(entries []mountEntry, p string) (mountEntry, bool) {
	best, found := mountEntry{}, false
	for _, e := range entries {
		if within(p, e.mountPoint) && (!found || len(e.mountPoint) >= len(best.mountPoint)) {
			best, found = e, true
		}
	}
	return best, found
}

// lvInfo is one row of the lvs listing.
type lvInfo struct {
	vg, name, attr string
	major, minor   int // -1 when the LV is not active
}

// parseLVs decodes `lvs --noheadings --separator : -o <lvsFields>`.
func parseLVs(out []byte) ([]lvInfo, error) {
	var lvs []lvInfo
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 5 || f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("unexpected lvs line %q", line)
		}
		major, err1 := strconv.Atoi(strings.TrimSpace(f[3]))
		minor, err2 := strconv.Atoi(strings.TrimSpace(f[4]))
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unexpected device number in lvs line %q", line)
		}
		lvs = append(lvs, lvInfo{vg: f[0], name: f[1], attr: f[2], major: major, minor: minor})
	}
	return lvs, nil
}

// thin reports whether the LV is a thin volume, whose snapshots take no size
// and are created with activation skipped.
func (l lvInfo) thin() bool { return strings.HasPrefix(l.attr, "V") }
