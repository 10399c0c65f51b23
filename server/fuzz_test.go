package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/server/api"
)

func FuzzDecodeTokens(f *testing.F) {
	_, rec, _ := newTokenSecret(api.RoleAgent, "pc-01", "", time.Unix(1, 0))
	good, _ := encodeTokens([]tokenRecord{rec})
	f.Add(good)
	f.Add([]byte(`{"version":1,"tokens":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"x","role":"god"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := decodeTokens(data)
		if err != nil {
			return
		}
		for _, r := range list {
			if err := validateRoleHost(r.Role, r.Host); err != nil {
				t.Fatalf("accepted token with %v", err)
			}
		}
		again, err := encodeTokens(list)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeTokens(again); err != nil {
			t.Fatalf("re-encoded tokens rejected: %v", err)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	tok, _, _ := newTokenSecret(api.RoleAdmin, "", "admin", time.Unix(1, 0))
	f.Add(tok)
	f.Add("costor_")
	f.Add("costor_0123456789abcdef_" + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		tid, secret, ok := parseToken(s)
		if ok && tokenPrefix+tid+"_"+secret != s {
			t.Fatalf("parseToken(%q) = %q, %q", s, tid, secret)
		}
	})
}

func FuzzDecodeServerKeys(f *testing.F) {
	k1, _ := crypto.NewRandomKey()
	k2, _ := crypto.NewRandomKey()
	good, _ := encodeServerKeys(serverKeys{Pack: k1, Audit: k2})
	f.Add(good)
	f.Add([]byte(`{"version":1,"pack_key":"","audit_key":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := decodeServerKeys(data)
		if err != nil {
			return
		}
		if k.Pack == (crypto.Key{}) || k.Audit == (crypto.Key{}) {
			t.Fatal("zero key accepted")
		}
		enc, _ := encodeServerKeys(k)
		if k2, err := decodeServerKeys(enc); err != nil || k2 != k {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzAuditLog(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var log bytes.Buffer
	prev := ""
	for i := 1; i <= 3; i++ {
		e := api.AuditEntry{Seq: uint64(i), Time: time.Unix(int64(i), 0).UTC(), Token: "admin", Action: "blob.get", Target: "blobs/x", Result: api.ResultAllowed, Status: 200, Prev: prev}
		e.Hash, _ = auditHash(key, &e)
		prev = e.Hash
		line, _ := json.Marshal(&e)
		log.Write(append(line, '\n'))
	}
	f.Add(log.Bytes())
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"time":"x"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := verifyAudit(bytes.NewReader(data), key, func(api.AuditEntry) error { n++; return nil })
		if err == nil && n != bytes.Count(data, []byte("\n")) {
			t.Fatalf("verified %d entries of %d lines", n, bytes.Count(data, []byte("\n")))
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if e, err := parseAuditLine(line); err == nil && e.Seq == 0 {
				t.Fatal("seq 0 accepted")
			}
		}
	})
}
