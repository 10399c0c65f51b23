package crypto

import (
	"errors"
	"strings"
	"testing"
)

func TestRepoKeys(t *testing.T) {
	priv, _, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	k := RepoKeys{OrgSecret: testKey(1), PackKey: testKey(2), Recovery: priv}
	data, err := EncodeRepoKeys(k, []byte("pw"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRepoKeys(data, []byte("pw"))
	k.Version = KeyFileVersion
	if err != nil || got != k {
		t.Fatalf("DecodeRepoKeys = %+v, %v", got, err)
	}
	if _, err := DecodeRepoKeys(data, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	if _, err := EncodeRepoKeys(RepoKeys{Version: 2}, []byte("pw"), TestKDFParams); err == nil {
		t.Fatal("encoding version 2 succeeded")
	}
	// A recovery key file is a different kind, even under the same password.
	rec, err := EncodeRecoveryKey(RecoveryKey{Private: priv}, []byte("pw"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRepoKeys(rec, []byte("pw")); err == nil || !strings.Contains(err.Error(), "recovery key file, not a costor repository keys") {
		t.Fatalf("recovery file as repo keys: got %v", err)
	}
	gotRec, err := DecodeRecoveryKey(rec, []byte("pw"))
	if err != nil || gotRec.Private != priv || gotRec.Version != KeyFileVersion {
		t.Fatalf("DecodeRecoveryKey = %+v, %v", gotRec, err)
	}
	if _, err := DecodeRecoveryKey(rec, []byte("nope")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
}

func TestOrgAndHostKey(t *testing.T) {
	priv, pub, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	org := OrgKey{Secret: testKey(3), RecoveryPublic: pub}
	data, err := EncodeOrgKey(org)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOrgKey(data)
	org.Version = KeyFileVersion
	if err != nil || got != org {
		t.Fatalf("DecodeOrgKey = %+v, %v", got, err)
	}
	host := HostKey{Host: "pc-01", Private: priv}
	hdata, err := EncodeHostKey(host)
	if err != nil {
		t.Fatal(err)
	}
	gotHost, err := DecodeHostKey(hdata)
	host.Version = KeyFileVersion
	if err != nil || gotHost != host {
		t.Fatalf("DecodeHostKey = %+v, %v", gotHost, err)
	}
	if host.DataKey() == (Key{}) || host.DataKey() == Key(priv) {
		t.Fatal("host data key is not derived")
	}
	if _, err := DecodeOrgKey(hdata); err == nil || !strings.Contains(err.Error(), "host key file, not a costor organisation key") {
		t.Fatalf("host key as org key: got %v", err)
	}
	if _, err := EncodeHostKey(HostKey{Private: priv}); err == nil {
		t.Fatal("host key without a host name encoded")
	}
}

func TestKeyFileDecodersReject(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"not json", "\x01\x02", "not a costor organisation key file"},
		{"no kind", `{"version":1}`, "not a costor organisation key file"},
		{"future version", `{"kind":"costor organisation key","version":2}`, "unsupported costor organisation key version 2"},
		{"missing secret", `{"kind":"costor organisation key","version":1,"recovery_public":"` + PublicKey{1}.String() + `"}`, "missing secret"},
		{"short secret", `{"kind":"costor organisation key","version":1,"secret":"AAE="}`, "secret is 2 bytes"},
		{"zero secret", `{"kind":"costor organisation key","version":1,"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`, "all zeros"},
		{"missing recovery", `{"kind":"costor organisation key","version":1,"secret":"` + PublicKey{1}.String() + `"}`, "missing recovery_public"},
		{"bad recovery", `{"kind":"costor organisation key","version":1,"recovery_public":"xx"}`, "invalid public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeOrgKey([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestHostEnvelope(t *testing.T) {
	hostPriv, hostPub, _ := GenerateKeyPair()
	recPriv, recPub, _ := GenerateKeyPair()
	otherPriv, _, _ := GenerateKeyPair()
	dataKey := HostKey{Host: "pc-01", Private: hostPriv}.DataKey()
	data, err := NewHostEnvelope("pc-01", dataKey, hostPub, recPub)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeHostEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if env.Host != "pc-01" || len(env.Recipients) != 2 || env.Recipients[1] != recPub || env.Version != KeyFileVersion {
		t.Fatalf("decoded envelope %+v", env)
	}
	for _, priv := range []PrivateKey{hostPriv, recPriv} {
		got, err := env.Open(priv)
		if err != nil || got != dataKey {
			t.Fatalf("Open = %x, %v", got, err)
		}
	}
	if _, err := env.Open(otherPriv); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("other key: got %v, want ErrNotRecipient", err)
	}
	// Renaming the envelope to another host must not make it that host's key.
	env.Host = "pc-02"
	if _, err := env.Open(hostPriv); err == nil || !strings.Contains(err.Error(), `holds the key of host "pc-01"`) {
		t.Fatalf("renamed envelope: got %v", err)
	}
	if _, err := DecodeHostEnvelope([]byte(`{"kind":"costor host key envelope","version":1,"host":"h"}`)); err == nil {
		t.Fatal("envelope without sealed bytes decoded")
	}
}
