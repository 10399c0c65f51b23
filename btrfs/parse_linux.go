//go:build linux

package btrfs

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// subvolume is one line of "btrfs subvolume list": path is relative to the
// filesystem's top-level subvolume (id 5).
type subvolume struct {
	id, parent uint64
	path       string
}

// parseSubvolumeList reads "ID 257 gen 7 top level 256 path a/b" lines and
// skips anything else (warnings, blank lines).
func parseSubvolumeList(out []byte) []subvolume {
	var list []subvolume
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "ID ")
		if !ok {
			continue
		}
		idStr, rest, ok := strings.Cut(rest, " gen ")
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, " top level ")
		if !ok {
			continue
		}
		parentStr, path, ok := strings.Cut(rest, " path ")
		if !ok || path == "" {
			continue
		}
		id, err1 := strconv.ParseUint(idStr, 10, 64)
		parent, err2 := strconv.ParseUint(parentStr, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		list = append(list, subvolume{id: id, parent: parent, path: strings.TrimPrefix(path, "<FS_TREE>/")})
	}
	return list
}

// parseShow reads "btrfs subvolume show": the first line is the subvolume's
// path relative to the top level ("/" for the top level itself), and the
// Flags line says whether it is read-only.
func parseShow(out []byte) (path string, readOnly bool) {
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	path = strings.Trim(strings.TrimSpace(string(first)), "/")
	if path == "<FS_TREE>" {
		path = ""
	}
	for _, line := range strings.Split(string(rest), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Flags:"); ok {
			readOnly = strings.Contains(v, "readonly")
		}
	}
	return path, readOnly
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	dev        string // major:minor, shared by every mount of one filesystem
	root       string // the directory of the filesystem mounted here
	mountPoint string
	fsType     string
	source     string
}

// parseMountinfo reads /proc/self/mountinfo (proc(5)); malformed lines are skipped.
func parseMountinfo(data []byte) []mount {
	var mounts []mount
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		mounts = append(mounts, mount{
			dev:        fields[2],
			root:       unescapeMountinfo(fields[3]),
			mountPoint: unescapeMountinfo(fields[4]),
			fsType:     fields[sep+1],
			source:     unescapeMountinfo(fields[sep+2]),
		})
	}
	return mounts
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] <= '3' && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			n := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(n)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// mountOf returns the mount that holds path p: the longest mount point
// that is p or above it, the last listed winning since later mounts shadow.
func mountOf(mounts []mount, p string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range mounts {
		if _, in := below(m.mountPoint, p); in && (!found || len(m.mountPoint) >= len(best.mountPoint)) {
			best, found = m, true
		}
	}
	return best, found
}

// reachable maps a path from the filesystem's top level to where mount m shows it.
func reachable(m mount, topPath string) (string, bool) {
	rel, ok := below(m.root, "/"+topPath)
	if !ok {
		return "", false
	}
	return join(m.mountPoint, rel), true
}
