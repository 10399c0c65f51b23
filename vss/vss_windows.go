//go:build windows

package vss

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Supported reports whether path lives on a local fixed NTFS or ReFS volume,
// the volumes the system's shadow copy provider handles.
func Supported(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, fmt.Errorf("vss: %s: %w", path, err)
	}
	mountPoint, err := volumePathName(abs)
	if err != nil {
		return false, err
	}
	mp16, err := windows.UTF16PtrFromString(mountPoint)
	if err != nil {
		return false, fmt.Errorf("vss: %s: %w", path, err)
	}
	if windows.GetDriveType(mp16) != windows.DRIVE_FIXED {
		return false, nil
	}
	var fsName [windows.MAX_PATH + 1]uint16
	if err := windows.GetVolumeInformation(mp16, nil, 0, nil, nil, nil, &fsName[0], uint32(len(fsName))); err != nil {
		return false, fmt.Errorf("vss: volume information of %s: %w", mountPoint, err)
	}
	switch windows.UTF16ToString(fsName[:]) {
	case "NTFS", "ReFS":
		return true, nil
	}
	return false, nil
}

// Cleanup has nothing to do: the shadow copies Take makes are non-persistent,
// and Windows deletes them when the process that made them ends, however it ends.
func Cleanup(ctx context.Context, opts Options) ([]string, error) { return nil, nil }

// Take makes one shadow copy set of every volume holding one of paths.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	if len(paths) == 0 {
		return nil, errors.New("vss snapshot: no paths given")
	}
	var wow64 bool
	if err := windows.IsWow64Process(windows.CurrentProcess(), &wow64); err == nil && wow64 {
		return nil, errors.New("vss snapshot: a 32-bit costor cannot make shadow copies on 64-bit Windows; install the 64-bit build")
	}
	var mountPoints, volumeNames []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("vss snapshot of %s: %w", p, err)
		}
		mp, err := volumePathName(abs)
		if err != nil {
			return nil, err
		}
		name, err := volumeGUIDName(mp)
		if err != nil {
			return nil, err
		}
		if !contains(mountPoints, mp) {
			mountPoints, volumeNames = append(mountPoints, mp), append(volumeNames, name)
		}
	}

	// Another requester's snapshot in progress is common on servers (a
	// scheduled system backup); wait a little and try again, as kopia does.
	var (
		set *shadowSet
		err error
	)
	for attempt := 0; ; attempt++ {
		set, err = createShadowSet(ctx, mountPoints, volumeNames, opts)
		var hre *hresultError
		if err == nil || attempt == 2 || !errors.As(err, &hre) || hre.hr != vssESnapshotSetInProgress {
			break
		}
		opts.logf("vss: another shadow copy is being made; retrying in 10s")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vss snapshot: %w", ctx.Err())
		case <-time.After(10 * time.Second):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("vss snapshot of %s: %w", strings.Join(mountPoints, ", "), err)
	}
	v := &View{release: set.close}
	for i, mp := range mountPoints {
		v.volumes = append(v.volumes, volumeMap{mountPoint: mp, device: set.devices[i]})
		opts.logf("vss: %s is shadow copy %s", mp, set.devices[i])
	}
	return v, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// volumePathName returns the mount point of the volume holding p, e.g. `C:\`.
func volumePathName(p string) (string, error) {
	p16, err := windows.UTF16PtrFromString(p)
	if err != nil {
		return "", fmt.Errorf("vss: %s: %w", p, err)
	}
	buf := make([]uint16, 1024)
	if err := windows.GetVolumePathName(p16, &buf[0], uint32(len(buf))); err != nil {
		return "", fmt.Errorf("vss: volume of %s: %w", p, err)
	}
	return windows.UTF16ToString(buf), nil
}

// volumeGUIDName returns `\\?\Volume{…}\` for a mount point, the name VSS
// wants and the same for every mount point of one volume.
func volumeGUIDName(mountPoint string) (string, error) {
	mp16, err := windows.UTF16PtrFromString(mountPoint)
	if err != nil {
		return "", fmt.Errorf("vss: %s: %w", mountPoint, err)
	}
	buf := make([]uint16, 64)
	if err := windows.GetVolumeNameForVolumeMountPoint(mp16, &buf[0], uint32(len(buf))); err != nil {
		return "", fmt.Errorf("vss: volume name of %s: %w; is it a local volume?", mountPoint, err)
	}
	return windows.UTF16ToString(buf), nil
}

// ---- COM plumbing ----
//
// IVssBackupComponents is a C++ COM interface with no type library, so it is
// called through its vtable: slot numbers below follow vsbackup.h (after
// IUnknown's QueryInterface, AddRef, Release).

const (
	iunknownRelease = 2

	bcInitializeForBackup   = 5
	bcSetBackupState        = 6
	bcGatherWriterMetadata  = 9
	bcPrepareForBackup      = 14
	bcAbortBackup           = 15
	bcBackupComplete        = 27
	bcSetContext            = 35
	bcStartSnapshotSet      = 36
	bcAddToSnapshotSet      = 37
	bcDoSnapshotSet         = 38
	bcDeleteSnapshots       = 39
	bcGetSnapshotProperties = 42

	asyncCancel      = 3
	asyncWait        = 4
	asyncQueryStatus = 5

	vssCtxBackup          = 0
	vssBtCopy             = 5
	vssObjectSnapshotSet  = 2
	vssSAsyncPending      = 0x00042309
	vssSAsyncFinished     = 0x0004230A
	vssSAsyncCancelled    = 0x0004230B
	rpcETooLate           = 0x80010119
	rpcCAuthnLevelPktPriv = 6
	rpcCImpLevelIdentify  = 2
	eoacDynamicCloaking   = 0x40
	infinite              = 0xFFFFFFFF
)

var (
	vssapi = windows.NewLazySystemDLL("VssApi.dll")
	// CreateVssBackupComponents is a C++ export with a mangled name;
	// VssApi.dll has exported this plain-C twin since Vista.
	procCreateVssBackupComponents = vssapi.NewProc("CreateVssBackupComponentsInternal")
	procCoInitializeSecurity      = windows.NewLazySystemDLL("ole32.dll").NewProc("CoInitializeSecurity")
)

// comObject is a COM interface pointer: its first word points to the vtable.
type comObject struct{ vtbl *[64]uintptr }

// call invokes vtable slot method. Its arguments are uintptrs made before the
// call, which the compiler's keep-alive rule for syscalls does not cover: every
// Go object whose address is passed must be pinned (runtime.Pinner) by the caller.
func (o *comObject) call(method int, args ...uintptr) uint32 {
	r, _, _ := syscall.SyscallN(o.vtbl[method], append([]uintptr{uintptr(unsafe.Pointer(o))}, args...)...)
	return uint32(r)
}

func failed(hr uint32) bool { return int32(hr) < 0 }

// guidArgs passes a GUID by value, which each ABI does differently: amd64
// passes a 16-byte struct by reference, arm64 in two registers, 386 and arm
// on the stack as four words. The caller pins g.
func guidArgs(g *windows.GUID) []uintptr {
	switch runtime.GOARCH {
	case "386", "arm":
		w := (*[4]uint32)(unsafe.Pointer(g))
		return []uintptr{uintptr(w[0]), uintptr(w[1]), uintptr(w[2]), uintptr(w[3])}
	case "arm64":
		w := (*[2]uint64)(unsafe.Pointer(g))
		return []uintptr{uintptr(w[0]), uintptr(w[1])}
	default:
		return []uintptr{uintptr(unsafe.Pointer(g))}
	}
}

// snapshotProp is VSS_SNAPSHOT_PROP.
type snapshotProp struct {
	snapshotID, snapshotSetID windows.GUID
	snapshotsCount            int32
	snapshotDeviceObject      *uint16
	originalVolumeName        *uint16
	originatingMachine        *uint16
	serviceMachine            *uint16
	exposedName               *uint16
	exposedPath               *uint16
	providerID                windows.GUID
	snapshotAttributes        int32
	creationTimestamp         int64
	status                    int32
	_                         uint32 // MSVC rounds the struct to 8 bytes; Go on 386 would not
}

// free is VssFreeSnapshotProperties, an inline function in vss.h.
func (p *snapshotProp) free() {
	for _, s := range []*uint16{p.snapshotDeviceObject, p.originalVolumeName, p.originatingMachine, p.serviceMachine, p.exposedName, p.exposedPath} {
		if s != nil {
			windows.CoTaskMemFree(unsafe.Pointer(s))
		}
	}
}

// comThread runs functions on one OS thread in the multithreaded apartment.
// COM objects are used on the thread whose apartment made them, and the
// apartment must outlive them: the view keeps the thread until Release.
type comThread struct{ calls chan func() }

func startCOM() (*comThread, error) {
	t := &comThread{calls: make(chan func())}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, so no other
		// goroutine inherits its COM state.
		runtime.LockOSThread()
		if err := windows.CoInitializeEx(0, windows.COINIT_MULTITHREADED); err != nil {
			started <- fmt.Errorf("initialise COM: %w", err)
			return
		}
		defer windows.CoUninitialize()
		// Writers call back into the requester; VSS documents these
		// settings for requesters. A second call in one process fails with
		// RPC_E_TOO_LATE, which leaves the first call's settings in force.
		hr, _, _ := procCoInitializeSecurity.Call(0, ^uintptr(0), 0, 0, rpcCAuthnLevelPktPriv, rpcCImpLevelIdentify, 0, eoacDynamicCloaking, 0)
		if failed(uint32(hr)) && uint32(hr) != rpcETooLate {
			started <- &hresultError{"CoInitializeSecurity", uint32(hr)}
			return
		}
		started <- nil
		for f := range t.calls {
			f()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

func (t *comThread) do(f func() error) error {
	done := make(chan error, 1)
	t.calls <- func() { done <- f() }
	return <-done
}

func (t *comThread) stop() { close(t.calls) }

// shadowSet is one IVssBackupComponents and the shadow copy set it made.
// COM writes into bc and setID: s is pinned while it does.
type shadowSet struct {
	com     *comThread
	bc      *comObject
	opts    Options
	setID   windows.GUID
	null    windows.GUID // GUID_NULL: let VSS choose the provider
	started bool         // StartSnapshotSet succeeded: AbortBackup on failure
	made    bool         // DoSnapshotSet succeeded: the copies exist
	devices []string
}

func createShadowSet(ctx context.Context, mountPoints, volumeNames []string, opts Options) (*shadowSet, error) {
	com, err := startCOM()
	if err != nil {
		return nil, err
	}
	s := &shadowSet{com: com, opts: opts}
	err = com.do(func() error { return s.create(ctx, volumeNames) })
	if err != nil {
		// Release the object even if the caller's ctx is done: that is
		// what deletes any copy already made.
		_ = com.do(func() error { s.abort(); return nil })
		com.stop()
		return nil, err
	}
	return s, nil
}

// create runs the requester sequence of "Overview of Backup Processing" up to
// the point where the shadow copies exist. It runs on the COM thread.
func (s *shadowSet) create(ctx context.Context, volumeNames []string) error {
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(s)
	if err := procCreateVssBackupComponents.Find(); err != nil {
		return fmt.Errorf("load VssApi.dll: %w", err)
	}
	hr, _, _ := procCreateVssBackupComponents.Call(uintptr(unsafe.Pointer(&s.bc)))
	if failed(uint32(hr)) {
		return &hresultError{"CreateVssBackupComponents", uint32(hr)}
	}
	steps := []struct {
		op     string
		method int
		args   []uintptr
	}{
		{"InitializeForBackup", bcInitializeForBackup, []uintptr{0}},
		// Non-persistent, auto-release copies, with writers taking part.
		{"SetContext", bcSetContext, []uintptr{vssCtxBackup}},
		// No component selection, no system state, a copy backup, no
		// partial files.
		{"SetBackupState", bcSetBackupState, []uintptr{0, 0, vssBtCopy, 0}},
	}
	for _, st := range steps {
		if hr := s.bc.call(st.method, st.args...); failed(hr) {
			return &hresultError{st.op, hr}
		}
	}
	if err := s.async(ctx, "GatherWriterMetadata", bcGatherWriterMetadata); err != nil {
		return err
	}
	if hr := s.bc.call(bcStartSnapshotSet, uintptr(unsafe.Pointer(&s.setID))); failed(hr) {
		return &hresultError{"StartSnapshotSet", hr}
	}
	s.started = true
	snapIDs := make([]windows.GUID, len(volumeNames))
	pin.Pin(&snapIDs[0])
	for i, name := range volumeNames {
		name16, err := windows.UTF16PtrFromString(name)
		if err != nil {
			return fmt.Errorf("volume %s: %w", name, err)
		}
		pin.Pin(name16)
		args := append([]uintptr{uintptr(unsafe.Pointer(name16))}, guidArgs(&s.null)...)
		hr := s.bc.call(bcAddToSnapshotSet, append(args, uintptr(unsafe.Pointer(&snapIDs[i])))...)
		if failed(hr) {
			return &hresultError{"AddToSnapshotSet " + name, hr}
		}
	}
	if err := s.async(ctx, "PrepareForBackup", bcPrepareForBackup); err != nil {
		return err
	}
	if err := s.async(ctx, "DoSnapshotSet", bcDoSnapshotSet); err != nil {
		return err
	}
	s.made = true
	for i := range snapIDs {
		prop := new(snapshotProp)
		pin.Pin(prop)
		hr := s.bc.call(bcGetSnapshotProperties, append(guidArgs(&snapIDs[i]), uintptr(unsafe.Pointer(prop)))...)
		if failed(hr) {
			return &hresultError{"GetSnapshotProperties", hr}
		}
		s.devices = append(s.devices, windows.UTF16PtrToString(prop.snapshotDeviceObject))
		prop.free()
	}
	return nil
}

// async calls a method that returns an IVssAsync and waits for it, polling so
// that ctx can cancel it.
func (s *shadowSet) async(ctx context.Context, op string, method int) error {
	out := new(struct {
		async  *comObject
		status uint32
	})
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(out)
	if hr := s.bc.call(method, uintptr(unsafe.Pointer(&out.async))); failed(hr) {
		return &hresultError{op, hr}
	}
	a := out.async
	defer a.call(iunknownRelease)
	for {
		if hr := a.call(asyncQueryStatus, uintptr(unsafe.Pointer(&out.status)), 0); failed(hr) {
			return &hresultError{op + " (status)", hr}
		}
		switch status := out.status; {
		case status == vssSAsyncCancelled:
			return fmt.Errorf("%s: cancelled", op)
		case failed(status):
			return &hresultError{op, status}
		case status != vssSAsyncPending:
			return nil
		}
		select {
		case <-ctx.Done():
			a.call(asyncCancel)
			a.call(asyncWait, infinite)
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// abort undoes a create that failed part-way. It runs on the COM thread.
func (s *shadowSet) abort() {
	if s.bc == nil {
		return
	}
	if s.started {
		s.bc.call(bcAbortBackup)
	}
	if s.made {
		s.deleteSet()
	}
	s.bc.call(iunknownRelease)
	s.bc = nil
}

func (s *shadowSet) deleteSet() error {
	out := new(struct {
		deleted    int32
		nondeleted windows.GUID
	})
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(s)
	pin.Pin(out)
	args := append(guidArgs(&s.setID), vssObjectSnapshotSet, 1, uintptr(unsafe.Pointer(&out.deleted)), uintptr(unsafe.Pointer(&out.nondeleted)))
	if hr := s.bc.call(bcDeleteSnapshots, args...); failed(hr) {
		return &hresultError{"DeleteSnapshots", hr}
	}
	return nil
}

// close tells the writers the backup is done, deletes the copies and lets go
// of the components object (which alone would delete them too).
func (s *shadowSet) close(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
	}
	err := s.com.do(func() error {
		var errs []error
		if err := s.async(ctx, "BackupComplete", bcBackupComplete); err != nil {
			errs = append(errs, err)
		}
		if err := s.deleteSet(); err != nil {
			errs = append(errs, err)
		}
		s.bc.call(iunknownRelease)
		s.bc = nil
		return errors.Join(errs...)
	})
	s.com.stop()
	if err != nil {
		return fmt.Errorf("vss release: %w", err)
	}
	s.opts.logf("vss: shadow copies deleted")
	return nil
}
