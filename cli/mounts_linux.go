package cli

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// mountPoint is one line of /proc/self/mountinfo we care about.
type mountPoint struct {
	path, fstype string
}

// mountsBelow lists the filesystems mounted strictly below any of paths.
// A filesystem snapshot of a path does not include them: they are either
// snapshotted too or reported, never silently backed up as empty
// directories.
func mountsBelow(paths []string) ([]mountPoint, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountPoint
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, p := range paths {
			if mp != p && within(mp, p) {
				out = append(out, mountPoint{path: mp, fstype: fields[sep+1]})
				break
			}
		}
	}
	return out, sc.Err()
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pseudoFS are kernel and memory filesystems: their content is not data to
// back up, so a snapshot showing them as empty directories is right.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "cgroup": true,
	"cgroup2": true, "securityfs": true, "debugfs": true, "tracefs": true, "mqueue": true,
	"hugetlbfs": true, "bpf": true, "pstore": true, "configfs": true, "fusectl": true,
	"binfmt_misc": true, "autofs": true, "efivarfs": true, "rpc_pipefs": true, "nsfs": true,
	"ramfs": true, "selinuxfs": true, "fuse.costor": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
}
