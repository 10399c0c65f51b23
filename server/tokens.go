package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/server/api"
)

// Token format: costor_<16 hex id>_<43 base64url secret>. The id finds the
// record; only the secret's SHA-256 is stored and compared.
const (
	tokenPrefix    = "costor_"
	tokenIDLen     = 16
	tokenSecretLen = 43 // 32 random bytes, unpadded base64url
	tokenLen       = len(tokenPrefix) + tokenIDLen + 1 + tokenSecretLen
)

// tokensFileVersion is the format of tokens.json.
const tokensFileVersion = 1

// errBadToken covers a missing, malformed, unknown or wrong token alike:
// the answer must not tell a guesser which part was wrong.
var errBadToken = errors.New("invalid token: check the token file or create a new token with `costor token create`")

// errRevoked is told apart: the owner of a revoked token needs to know
// that retrying will not help.
var errRevoked = errors.New("token revoked: ask the admin for a new one (`costor token create`)")

type tokenRecord struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Role    string     `json:"role"`
	Host    string     `json:"host"`
	Created time.Time  `json:"created"`
	Revoked *time.Time `json:"revoked,omitempty"`
	// SecretSHA256 is the hex SHA-256 of the secret part of the token.
	SecretSHA256 string `json:"secret_sha256"`
}

type tokensFile struct {
	Version int           `json:"version"`
	Tokens  []tokenRecord `json:"tokens"`
}

func (t *tokenRecord) public() api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Role: t.Role, Host: t.Host, Created: t.Created, Revoked: t.Revoked}
}

// tokenStore holds the tokens in memory and in tokens.json, rewritten
// atomically on every change (tokens change rarely).
type tokenStore struct {
	path string
	mu   sync.RWMutex
	list []tokenRecord
	byID map[string]int
}

func encodeTokens(list []tokenRecord) ([]byte, error) {
	return json.MarshalIndent(tokensFile{Version: tokensFileVersion, Tokens: list}, "", "  ")
}

// decodeTokens parses tokens.json and checks every record, so that a
// hand-edited file cannot smuggle in a token of an unknown role.
func decodeTokens(data []byte) ([]tokenRecord, error) {
	var f tokensFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("malformed tokens file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("malformed tokens file: data after the JSON object")
	}
	if f.Version != tokensFileVersion {
		return nil, fmt.Errorf("tokens file version %d is not supported (this costor reads %d)", f.Version, tokensFileVersion)
	}
	seen := make(map[string]bool, len(f.Tokens))
	for i := range f.Tokens {
		t := &f.Tokens[i]
		if len(t.ID) != tokenIDLen || !isLowerHex(t.ID) {
			return nil, fmt.Errorf("malformed tokens file: token %d has id %q, want %d hex digits", i, t.ID, tokenIDLen)
		}
		if seen[t.ID] {
			return nil, fmt.Errorf("malformed tokens file: token id %s appears twice", t.ID)
		}
		seen[t.ID] = true
		if err := validateRoleHost(t.Role, t.Host); err != nil {
			return nil, fmt.Errorf("malformed tokens file: token %s: %w", t.ID, err)
		}
		if len(t.SecretSHA256) != 2*sha256.Size || !isLowerHex(t.SecretSHA256) {
			return nil, fmt.Errorf("malformed tokens file: token %s has no valid secret_sha256", t.ID)
		}
	}
	return f.Tokens, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validateRoleHost checks a role and the host it is bound to.
func validateRoleHost(role, host string) error {
	switch role {
	case api.RoleAdmin, api.RolePeer:
		if host != "" {
			return fmt.Errorf("role %s is not bound to a host; leave the host empty", role)
		}
		return nil
	case api.RoleAgent:
		if host == "" {
			return errors.New("role agent needs a host: give --host")
		}
	case api.RoleReader:
		if host == "" {
			return nil // a reader of every host
		}
	default:
		return fmt.Errorf("unknown role %q: use admin, agent, reader or peer", role)
	}
	if err := snapshot.ValidateHost(host); err != nil {
		return fmt.Errorf("host %q cannot be used: %w", host, err)
	}
	return nil
}

func openTokens(path string) (*tokenStore, error) {
	s := &tokenStore{path: path, byID: map[string]int{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	list, err := decodeTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; restore it from a backup of the data directory", path, err)
	}
	s.list = list
	for i := range list {
		s.byID[list[i].ID] = i
	}
	return s, nil
}

// exists reports whether tokens.json was there when the store was opened
// or has been written since.
func (s *tokenStore) exists() bool {
	_, err := os.Stat(s.path)
	return err == nil
}

// newTokenSecret returns a fresh token and its record (not yet stored).
func newTokenSecret(role, host, name string, now time.Time) (string, tokenRecord, error) {
	var raw [8 + 32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", tokenRecord{}, err
	}
	tid := hex.EncodeToString(raw[:8])
	secret := base64.RawURLEncoding.EncodeToString(raw[8:])
	if name == "" {
		name = role
		if host != "" {
			name += "-" + host
		}
		name += "-" + tid[:6]
	}
	sum := sha256.Sum256([]byte(secret))
	rec := tokenRecord{ID: tid, Name: name, Role: role, Host: host, Created: now.UTC(), SecretSHA256: hex.EncodeToString(sum[:])}
	return tokenPrefix + tid + "_" + secret, rec, nil
}

// parseToken splits a token into its id and secret.
func parseToken(tok string) (tid, secret string, ok bool) {
	if len(tok) != tokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return "", "", false
	}
	rest := tok[len(tokenPrefix):]
	if rest[tokenIDLen] != '_' {
		return "", "", false
	}
	tid, secret = rest[:tokenIDLen], rest[tokenIDLen+1:]
	if !isLowerHex(tid) {
		return "", "", false
	}
	return tid, secret, true
}

// recordFromToken rebuilds the record of a token whose secret is known
// (admin.token written, tokens.json lost in a crash of the first start).
func recordFromToken(tok, role, name string, now time.Time) (tokenRecord, bool) {
	tid, secret, ok := parseToken(tok)
	if !ok {
		return tokenRecord{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	return tokenRecord{ID: tid, Name: name, Role: role, Created: now.UTC(), SecretSHA256: hex.EncodeToString(sum[:])}, true
}

// authenticate returns the record of a valid token. The stored hash is
// compared in constant time; the lookup by id leaks only whether an id
// exists, which is not a secret.
func (s *tokenStore) authenticate(tok string) (tokenRecord, error) {
	tid, secret, ok := parseToken(tok)
	if !ok {
		return tokenRecord{}, errBadToken
	}
	sum := sha256.Sum256([]byte(secret))
	want := make([]byte, sha256.Size)
	s.mu.RLock()
	i, found := s.byID[tid]
	var rec tokenRecord
	if found {
		rec = s.list[i]
	}
	s.mu.RUnlock()
	if !found {
		return tokenRecord{}, errBadToken
	}
	if _, err := hex.Decode(want, []byte(rec.SecretSHA256)); err != nil {
		return tokenRecord{}, errBadToken
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return tokenRecord{}, errBadToken
	}
	if rec.Revoked != nil {
		return rec, errRevoked
	}
	return rec, nil
}

// add stores a new record durably.
func (s *tokenStore) add(rec tokenRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byID[rec.ID]; dup {
		return fmt.Errorf("token id %s exists already", rec.ID)
	}
	list := append(slices.Clone(s.list), rec)
	if err := s.save(list); err != nil {
		return err
	}
	s.list = list
	s.byID[rec.ID] = len(list) - 1
	return nil
}

// revoke marks a token revoked durably; revoking twice keeps the first time.
func (s *tokenStore) revoke(tid string, now time.Time) (api.Token, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.byID[tid]
	if !ok {
		return api.Token{}, false, nil
	}
	if s.list[i].Revoked != nil {
		return s.list[i].public(), true, nil
	}
	list := slices.Clone(s.list)
	t := now.UTC()
	list[i].Revoked = &t
	if err := s.save(list); err != nil {
		return api.Token{}, true, err
	}
	s.list = list
	return list[i].public(), true, nil
}

func (s *tokenStore) all() []api.Token {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.Token, len(s.list))
	for i := range s.list {
		out[i] = s.list[i].public()
	}
	return out
}

func (s *tokenStore) save(list []tokenRecord) error {
	data, err := encodeTokens(list)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return nil
}
