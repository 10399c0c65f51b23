package fsmeta

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
)

// NameCache maps numeric user and group IDs to names. It reads /etc/passwd
// and /etc/group once, on first use, and asks os/user only for IDs those
// files do not know (with cgo that reaches NSS/LDAP; without cgo it costs a
// re-read of the same files). Misses are cached as "" so a tree full of files
// owned by an unknown ID costs one lookup. Safe for concurrent use.
type NameCache struct {
	load   sync.Once
	mu     sync.RWMutex
	users  map[uint32]string
	groups map[uint32]string
	// lookup functions, replaceable in tests.
	lookupUser  func(id uint32) string
	lookupGroup func(id uint32) string
	passwdPath  string
	groupPath   string
}

// NewNameCache returns an empty cache reading the system's files.
func NewNameCache() *NameCache {
	return &NameCache{
		lookupUser:  osLookupUser,
		lookupGroup: osLookupGroup,
		passwdPath:  "/etc/passwd",
		groupPath:   "/etc/group",
	}
}

// User returns the name of user uid, or "" if unknown.
func (c *NameCache) User(uid uint32) string {
	return c.get(uid, &c.users, c.lookupUser)
}

// Group returns the name of group gid, or "" if unknown.
func (c *NameCache) Group(gid uint32) string {
	return c.get(gid, &c.groups, c.lookupGroup)
}

func (c *NameCache) get(id uint32, m *map[uint32]string, lookup func(uint32) string) string {
	c.load.Do(c.readFiles)
	c.mu.RLock()
	name, ok := (*m)[id]
	c.mu.RUnlock()
	if ok {
		return name
	}
	name = lookup(id)
	c.mu.Lock()
	(*m)[id] = name
	c.mu.Unlock()
	return name
}

func (c *NameCache) readFiles() {
	c.users = readIDFile(c.passwdPath)
	c.groups = readIDFile(c.groupPath)
}

// readIDFile reads a passwd(5)- or group(5)-style file; a missing or
// unreadable file is an empty map, since names are only informational.
func readIDFile(path string) map[uint32]string {
	f, err := os.Open(path)
	if err != nil {
		return make(map[uint32]string)
	}
	defer f.Close()
	return parseIDFile(f)
}

// parseIDFile extracts name (field 1) and numeric ID (field 3) from
// colon-separated lines. Comments, malformed lines and non-numeric IDs are
// skipped; the first name for an ID wins, as with getpwuid.
func parseIDFile(r io.Reader) map[uint32]string {
	m := make(map[uint32]string)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for s.Scan() {
		line := s.Bytes()
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			continue
		}
		_, rest, ok = bytes.Cut(rest, []byte{':'}) // password
		if !ok {
			continue
		}
		idField, _, _ := bytes.Cut(rest, []byte{':'})
		id, err := strconv.ParseUint(string(idField), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := m[uint32(id)]; !dup {
			m[uint32(id)] = string(name)
		}
	}
	return m
}

func osLookupUser(id uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

func osLookupGroup(id uint32) string {
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		return ""
	}
	return g.Name
}
