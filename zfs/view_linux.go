//go:build linux

package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var errReleased = errors.New("zfs view already released")

const namePrefix = "costor-"

func (o Options) tag() (string, error) {
	if o.Tag == "" {
		return "backup", nil
	}
	if len(o.Tag) > 64 || strings.Trim(o.Tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return "", fmt.Errorf("zfs snapshot tag %q: use at most 64 letters, digits, '.', '_' or '-'", o.Tag)
	}
	return o.Tag, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// run runs one command; its error names the command line and carries stderr.
func (o Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmdline := strings.Join(append([]string{name}, args...), " ")
	if o.Run != nil {
		out, err := o.Run(ctx, name, args...)
		if err != nil {
			return out, fmt.Errorf("%s: %w: %s", cmdline, err, bytes.TrimSpace(out))
		}
		return out, nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", cmdline, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}

// lastNameTime keeps names unique within a process: two Takes in the same
// second would otherwise collide on one dataset.
var lastNameTime atomic.Int64

func snapshotName(tag string, pid int, now time.Time) string {
	t := now.Unix()
	for {
		last := lastNameTime.Load()
		if t <= last {
			t = last + 1
		}
		if lastNameTime.CompareAndSwap(last, t) {
			break
		}
	}
	return fmt.Sprintf("%s%s-%d-%d", namePrefix, tag, pid, t)
}

// parseName splits "costor-<tag>-<pid>-<unix time>"; ok is false for any
// other name, so Cleanup never touches what it did not make.
func parseName(name string) (tag string, pid int, unix int64, ok bool) {
	rest, found := strings.CutPrefix(name, namePrefix)
	if !found {
		return "", 0, 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", 0, 0, false
	}
	unix, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || unix <= 0 || rest[i+1] == '+' {
		return "", 0, 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 {
		return "", 0, 0, false
	}
	p, err := strconv.Atoi(rest[j+1:])
	if err != nil || p <= 0 || rest[j+1] == '+' {
		return "", 0, 0, false
	}
	return rest[:j], p, unix, true
}

// View is a set of read-only ZFS snapshots covering the paths given to Take.
// Path is safe for concurrent use; Release may run once the walk is done.
type View struct {
	opts     Options
	name     string  // the snapshot name, the same on every dataset
	roots    []root  // the paths given to Take
	snaps    []*snap // longest mount point first, so Path finds the innermost
	mu       sync.Mutex
	released atomic.Bool
}

// root maps a path as given to Take to the same path with symlinks resolved.
type root struct{ original, resolved string }

type snap struct {
	dataset    string
	mountPoint string
	created    bool
	destroyed  bool
}

func (s *snap) fullName(name string) string { return s.dataset + "@" + name }

// Path maps an original absolute path (one given to Take, or below one) to
// where the same content can be read inside the view. A path inside a
// dataset mounted below a backup path maps into that dataset's snapshot.
func (v *View) Path(original string) (string, error) {
	if v.released.Load() {
		return "", fmt.Errorf("map %s: %w", original, errReleased)
	}
	if !filepath.IsAbs(original) {
		return "", fmt.Errorf("map %s into zfs view: path is not absolute", original)
	}
	p := filepath.Clean(original)
	resolved, ok := "", false
	for _, r := range v.roots {
		if rel, in := below(r.original, p); in {
			resolved, ok = join(r.resolved, rel), true
			break
		}
	}
	if !ok {
		return "", fmt.Errorf("map %s into zfs view: not below any path the snapshot was taken for", original)
	}
	for _, s := range v.snaps {
		if rel, in := below(s.mountPoint, resolved); in {
			return join(filepath.Join(s.mountPoint, ".zfs", "snapshot", v.name), rel), nil
		}
	}
	return "", fmt.Errorf("map %s into zfs view: no snapshot covers %s", original, resolved)
}

// below reports whether p is base or inside it, and p relative to base.
func below(base, p string) (string, bool) {
	if p == base {
		return "", true
	}
	if base == "/" {
		if !strings.HasPrefix(p, "/") {
			return "", false
		}
		return p[1:], true
	}
	if strings.HasPrefix(p, base) && p[len(base)] == '/' {
		return p[len(base)+1:], true
	}
	return "", false
}

func join(dir, rel string) string {
	if rel == "" {
		return dir
	}
	return filepath.Join(dir, rel)
}

// releaseContext keeps cleanup alive after Ctrl-C cancelled the caller's ctx.
func releaseContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}

// mount is a ZFS dataset mounted somewhere (from /proc/self/mountinfo).
type mount struct {
	dataset    string
	mountPoint string
}

// parseMountinfo returns the ZFS filesystems in /proc/self/mountinfo
// (proc(5)), leaving out snapshots auto-mounted under .zfs/snapshot.
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
		if sep < 0 || sep+2 >= len(fields) || fields[sep+1] != "zfs" {
			continue
		}
		m := mount{dataset: unescapeMountinfo(fields[sep+2]), mountPoint: unescapeMountinfo(fields[4])}
		if strings.Contains(m.dataset, "@") || !filepath.IsAbs(m.mountPoint) {
			continue
		}
		mounts = append(mounts, m)
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
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// mountOf returns the dataset mounted at p or nearest above it, the last
// listed winning since later mounts shadow earlier ones.
func mountOf(mounts []mount, p string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range mounts {
		if _, in := below(m.mountPoint, p); in && (!found || len(m.mountPoint) >= len(best.mountPoint)) {
			best, found = m, true
		}
	}
	return best, found
}

// parseSnapshotList reads "zfs list -H -t snapshot -o name": one
// dataset@snapshot per line; anything else is skipped.
func parseSnapshotList(out []byte) []string {
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		ds, snapName, ok := strings.Cut(line, "@")
		if !ok || ds == "" || snapName == "" || strings.ContainsAny(snapName, "@\t") {
			continue
		}
		names = append(names, line)
	}
	return names
}

// pool is the pool a dataset lives in: snapshots of one pool can be taken
// in one atomic command.
func pool(dataset string) string {
	p, _, _ := strings.Cut(dataset, "/")
	return p
}
