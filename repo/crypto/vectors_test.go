package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the current implementation")

const vectorsFile = "testdata/vectors.json"

// hexBytes is hex in JSON, so a reviewer can feed vectors to another
// implementation without a base64 step.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

// vectors pins every format. "random" fields are the exact bytes the
// construction reads from its randomness source, in order.
type vectors struct {
	Comment           string `json:"comment"`
	SealDeterministic []struct {
		Key       hexBytes `json:"key"`
		Plaintext hexBytes `json:"plaintext"`
		Sealed    hexBytes `json:"sealed"`
	} `json:"seal_deterministic"`
	ChunkKey []struct {
		OrgSecret hexBytes `json:"org_secret"`
		Plaintext hexBytes `json:"plaintext"`
		Key       hexBytes `json:"key"`
	} `json:"chunk_key"`
	ChunkerPolynomial []struct {
		OrgSecret  hexBytes `json:"org_secret"`
		Polynomial string   `json:"polynomial"`
	} `json:"chunker_polynomial"`
	HostDataKey []struct {
		HostPrivate hexBytes `json:"host_private"`
		DataKey     hexBytes `json:"data_key"`
	} `json:"host_data_key"`
	PasswordWrap []struct {
		Password  string    `json:"password"`
		Params    KDFParams `json:"params"`
		Plaintext hexBytes  `json:"plaintext"`
		Random    hexBytes  `json:"random"` // salt (16) || nonce (12)
		Wrapped   hexBytes  `json:"wrapped"`
	} `json:"password_wrap"`
	Envelope []struct {
		Plaintext         hexBytes   `json:"plaintext"`
		RecipientPrivates []hexBytes `json:"recipient_privates"`
		Random            hexBytes   `json:"random"` // file key (32) || one ephemeral private key (32) per recipient || nonce (12)
		Sealed            hexBytes   `json:"sealed"`
	} `json:"envelope"`
}

func seq(n int, start byte) hexBytes {
	b := make(hexBytes, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// vectorInputs are the inputs written by -update.
func vectorInputs() *vectors {
	v := &vectors{Comment: "costor crypto test vectors; see docs/crypto.md. Regenerate with go test ./repo/crypto -run TestVectors -update only for an intended format change."}
	key, other := seq(32, 0), seq(32, 0x80)
	plains := []hexBytes{{}, []byte("costor"), seq(100, 0x20)}
	for _, p := range plains {
		v.SealDeterministic = append(v.SealDeterministic, struct {
			Key       hexBytes `json:"key"`
			Plaintext hexBytes `json:"plaintext"`
			Sealed    hexBytes `json:"sealed"`
		}{Key: key, Plaintext: p})
		v.ChunkKey = append(v.ChunkKey, struct {
			OrgSecret hexBytes `json:"org_secret"`
			Plaintext hexBytes `json:"plaintext"`
			Key       hexBytes `json:"key"`
		}{OrgSecret: key, Plaintext: p})
	}
	for _, k := range []hexBytes{key, other} {
		v.ChunkerPolynomial = append(v.ChunkerPolynomial, struct {
			OrgSecret  hexBytes `json:"org_secret"`
			Polynomial string   `json:"polynomial"`
		}{OrgSecret: k})
		v.HostDataKey = append(v.HostDataKey, struct {
			HostPrivate hexBytes `json:"host_private"`
			DataKey     hexBytes `json:"data_key"`
		}{HostPrivate: k})
	}
	v.PasswordWrap = append(v.PasswordWrap, struct {
		Password  string    `json:"password"`
		Params    KDFParams `json:"params"`
		Plaintext hexBytes  `json:"plaintext"`
		Random    hexBytes  `json:"random"`
		Wrapped   hexBytes  `json:"wrapped"`
	}{Password: "correct horse battery staple", Params: TestKDFParams, Plaintext: []byte(`{"kind":"example"}`), Random: seq(saltSize+NonceSize, 0x40)})
	v.Envelope = append(v.Envelope, struct {
		Plaintext         hexBytes   `json:"plaintext"`
		RecipientPrivates []hexBytes `json:"recipient_privates"`
		Random            hexBytes   `json:"random"`
		Sealed            hexBytes   `json:"sealed"`
	}{Plaintext: seq(32, 0xc0), RecipientPrivates: []hexBytes{seq(32, 0x10), seq(32, 0x30)}, Random: seq(32+2*32+NonceSize, 0x60)})
	return v
}

// compute fills in, or (check) compares against, every output in v.
func (v *vectors) compute(t *testing.T, check bool) {
	t.Helper()
	set := func(name string, dst *hexBytes, got []byte) {
		if !check {
			*dst = got
		} else if !bytes.Equal(*dst, got) {
			t.Errorf("%s: got %x, want %x", name, got, []byte(*dst))
		}
	}
	for i := range v.SealDeterministic {
		e := &v.SealDeterministic[i]
		set(fmt.Sprintf("seal_deterministic[%d]", i), &e.Sealed, SealDeterministic(Key(e.Key), nil, e.Plaintext))
	}
	for i := range v.ChunkKey {
		e := &v.ChunkKey[i]
		k := NewChunkKeyer(Key(e.OrgSecret)).ChunkKey(e.Plaintext)
		set(fmt.Sprintf("chunk_key[%d]", i), &e.Key, k[:])
	}
	for i := range v.ChunkerPolynomial {
		e := &v.ChunkerPolynomial[i]
		pol, err := ChunkerPolynomial(Key(e.OrgSecret))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("0x%x", uint64(pol)); !check {
			e.Polynomial = got
		} else if got != e.Polynomial {
			t.Errorf("chunker_polynomial[%d]: got %s, want %s", i, got, e.Polynomial)
		}
	}
	for i := range v.HostDataKey {
		e := &v.HostDataKey[i]
		k := HostKey{Private: PrivateKey(e.HostPrivate)}.DataKey()
		set(fmt.Sprintf("host_data_key[%d]", i), &e.DataKey, k[:])
	}
	for i := range v.PasswordWrap {
		e := &v.PasswordWrap[i]
		got, err := wrapWithPassword(bytes.NewReader(e.Random), []byte(e.Password), e.Plaintext, e.Params)
		if err != nil {
			t.Fatal(err)
		}
		set(fmt.Sprintf("password_wrap[%d]", i), &e.Wrapped, got)
	}
	for i := range v.Envelope {
		e := &v.Envelope[i]
		var recipients []PublicKey
		for _, p := range e.RecipientPrivates {
			recipients = append(recipients, PrivateKey(p).Public())
		}
		got, err := sealTo(bytes.NewReader(e.Random), e.Plaintext, recipients)
		if err != nil {
			t.Fatal(err)
		}
		set(fmt.Sprintf("envelope[%d]", i), &e.Sealed, got)
	}
}

// open checks that the stored outputs decode back to their inputs, so the
// vectors also pin the decoders.
func (v *vectors) open(t *testing.T) {
	for i, e := range v.SealDeterministic {
		if got, err := OpenDeterministic(Key(e.Key), nil, e.Sealed); err != nil || !bytes.Equal(got, e.Plaintext) {
			t.Errorf("open seal_deterministic[%d]: %q, %v", i, got, err)
		}
	}
	for i, e := range v.PasswordWrap {
		if got, err := UnwrapWithPassword([]byte(e.Password), e.Wrapped); err != nil || !bytes.Equal(got, e.Plaintext) {
			t.Errorf("unwrap password_wrap[%d]: %q, %v", i, got, err)
		}
	}
	for i, e := range v.Envelope {
		for j, p := range e.RecipientPrivates {
			if got, err := OpenWith(PrivateKey(p), e.Sealed); err != nil || !bytes.Equal(got, e.Plaintext) {
				t.Errorf("open envelope[%d] as recipient %d: %q, %v", i, j, got, err)
			}
		}
	}
}

func TestVectors(t *testing.T) {
	if *update {
		v := vectorInputs()
		v.compute(t, false)
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse %s: %v", vectorsFile, err)
	}
	if len(v.SealDeterministic) == 0 || len(v.Envelope) == 0 || len(v.PasswordWrap) == 0 {
		t.Fatalf("%s is missing sections", vectorsFile)
	}
	v.compute(t, true)
	v.open(t)
}
