package server

import (
	"slices"

	"github.com/costor/costor/server/api"
)

// identity is who a request's token stands for.
type identity struct {
	TokenID string
	Name    string
	Role    string
	Host    string // the bound host; "" for admin, peer and a reader of all hosts
}

func identityOf(t tokenRecord) identity {
	return identity{TokenID: t.ID, Name: t.Name, Role: t.Role, Host: t.Host}
}

// is reports whether the role is one of roles.
func (who identity) is(roles ...string) bool { return slices.Contains(roles, who.Role) }

// seesAllHosts: admin and a reader bound to no host read every host's data.
func (who identity) seesAllHosts() bool {
	return who.Role == api.RoleAdmin || who.Role == api.RoleReader && who.Host == ""
}

// seesHost reports whether the token may read host's snapshots, envelopes
// and blobs. A peer sees no host: it replicates opaque packs only.
func (who identity) seesHost(host string) bool {
	if who.seesAllHosts() {
		return true
	}
	return who.is(api.RoleAgent, api.RoleReader) && who.Host == host
}

// writesHost reports whether the token may add snapshots and envelopes for
// host: an agent only for its own host, an admin for any.
func (who identity) writesHost(host string) bool {
	return who.Role == api.RoleAdmin || who.Role == api.RoleAgent && who.Host == host
}
