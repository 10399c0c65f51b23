package vss

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrUnsupported is returned on platforms without VSS.
var ErrUnsupported = errors.New("vss snapshots are not supported on this platform")

// Options tune Take. Zero values are sensible.
type Options struct {
	// Tag is accepted for symmetry with the other adapters; shadow copies
	// cannot carry a name, and need none (see Cleanup).
	Tag string
	// Logf, if set, is told about each volume snapshotted and released.
	Logf func(format string, args ...any)
}

// View is one shadow copy set covering the paths given to Take.
type View struct {
	mu      sync.Mutex
	volumes []volumeMap
	release func(ctx context.Context) error // nil once released
}

// volumeMap ties a volume's mount point ("C:\", "D:\mnt\data\") to the device
// of its shadow copy ("\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7").
type volumeMap struct {
	mountPoint string
	device     string
}

// Path maps an original absolute path on one of the snapshotted volumes
// (C:\Users\a\x) to the same file inside the shadow copy.
func (v *View) Path(original string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.release == nil {
		return "", fmt.Errorf("vss view path %s: view already released", original)
	}
	return mapPath(v.volumes, original)
}

// Release deletes the shadow copies. It is idempotent, and ignores a
// cancelled ctx: cleanup must also happen after Ctrl-C.
func (v *View) Release(ctx context.Context) error {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.release == nil {
		return nil
	}
	// Deleting is a single attempt: once the components object is released
	// Windows deletes the copies whatever happened before, so there is
	// nothing a retry could add.
	err := v.release(ctx)
	v.release = nil
	return err
}

// cleanPath brings a Windows path to one form for comparison: backslashes,
// no \\?\ prefix before a drive letter, no repeated or trailing separators
// except the root's.
func cleanPath(p string) string {
	p = strings.ReplaceAll(p, "/", `\`)
	if rest, ok := strings.CutPrefix(p, `\\?\`); ok && len(rest) >= 2 && rest[1] == ':' {
		p = rest
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		// Keep a leading \\ (UNC, device paths); collapse any other run.
		if p[i] == '\\' && i > 1 && p[i-1] == '\\' {
			continue
		}
		b.WriteByte(p[i])
	}
	p = b.String()
	if len(p) == 2 && p[1] == ':' {
		return p + `\`
	}
	if len(p) > 3 || (len(p) == 3 && p[1] != ':') {
		p = strings.TrimSuffix(p, `\`)
	}
	return p
}

// mapPath finds the volume whose mount point is the longest prefix of
// original (Windows paths compare case-insensitively) and joins the rest of
// the path to its shadow copy device.
func mapPath(volumes []volumeMap, original string) (string, error) {
	p := cleanPath(original)
	best, bestLen := -1, 0
	var bestRest string
	for i, vol := range volumes {
		mp := cleanPath(vol.mountPoint)
		if !strings.HasSuffix(mp, `\`) {
			mp += `\`
		}
		var rest string
		switch {
		case len(p) >= len(mp) && strings.EqualFold(p[:len(mp)], mp):
			rest = p[len(mp):]
		case strings.EqualFold(p+`\`, mp):
			rest = ""
		default:
			continue
		}
		if best < 0 || len(mp) > bestLen {
			best, bestLen, bestRest = i, len(mp), rest
		}
	}
	if best < 0 {
		return "", fmt.Errorf("vss view path %s: not on a snapshotted volume", original)
	}
	return strings.TrimSuffix(volumes[best].device, `\`) + `\` + bestRest, nil
}

// HRESULTs that deserve a hint; the values are from vss.h and winerror.h.
const (
	hrAccessDenied            = 0x80070005
	hrUnexpected              = 0x8000FFFF
	vssEBadState              = 0x80042301
	vssEProviderVeto          = 0x80042306
	vssEObjectNotFound        = 0x80042308
	vssEVolumeNotSupported    = 0x8004230C
	vssEVolumeNotSupportedByP = 0x8004230E
	vssEUnexpectedProvider    = 0x8004230F
	vssEMaxVolumes            = 0x80042312
	vssEFlushWritesTimeout    = 0x80042313
	vssEHoldWritesTimeout     = 0x80042314
	vssESnapshotSetInProgress = 0x80042316
	vssEMaxSnapshots          = 0x80042317
	vssEInsufficientStorage   = 0x8004231F
	vssEWriterInfrastructure  = 0x80042318
	vssEWriterNotResponding   = 0x80042319
	hrClassNotRegistered      = 0x80040154
)

// hresultError is a failed COM call.
type hresultError struct {
	op string
	hr uint32
}

func (e *hresultError) Error() string {
	return fmt.Sprintf("%s failed: HRESULT 0x%08X%s", e.op, e.hr, hresultHint(e.hr))
}

// hresultHint says, for the failures an admin can act on, what to do.
func hresultHint(hr uint32) string {
	switch hr {
	case hrAccessDenied:
		return " (access denied); run costor as Administrator (elevated)"
	case hrUnexpected, hrClassNotRegistered:
		return " (unexpected); is the Volume Shadow Copy service enabled, and is this the 64-bit costor on 64-bit Windows?"
	case vssEBadState:
		return " (VSS_E_BAD_STATE)"
	case vssEProviderVeto:
		return " (VSS_E_PROVIDER_VETO: the shadow copy provider refused; see the Application event log)"
	case vssEObjectNotFound:
		return " (VSS_E_OBJECT_NOT_FOUND)"
	case vssEVolumeNotSupported, vssEVolumeNotSupportedByP:
		return " (VSS_E_VOLUME_NOT_SUPPORTED: only local NTFS and ReFS volumes can be shadow-copied)"
	case vssEUnexpectedProvider:
		return " (VSS_E_UNEXPECTED_PROVIDER_ERROR; see the Application event log)"
	case vssEMaxVolumes:
		return " (VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED: too many volumes in one backup)"
	case vssEFlushWritesTimeout, vssEHoldWritesTimeout:
		return " (VSS timed out freezing writes: the system is too busy; try again at a quieter time)"
	case vssESnapshotSetInProgress:
		return " (VSS_E_SNAPSHOT_SET_IN_PROGRESS: another backup is making shadow copies; try again later)"
	case vssEMaxSnapshots:
		return " (VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED: delete old shadow copies with `vssadmin delete shadows`)"
	case vssEInsufficientStorage:
		return " (VSS_E_INSUFFICIENT_STORAGE: free space on the volume or enlarge its shadow storage with `vssadmin resize shadowstorage`)"
	case vssEWriterInfrastructure, vssEWriterNotResponding:
		return " (a VSS writer failed; `vssadmin list writers` shows which)"
	}
	return ""
}
