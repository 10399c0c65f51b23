package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for every decoder of bytes read from disk or the network. They
// must never panic, and anything they accept must be what the encoder makes.

func FuzzOpenDeterministic(f *testing.F) {
	key := testKey(1)
	f.Add(SealDeterministic(key, nil, []byte("chunk")))
	f.Add(SealDeterministic(key, nil, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		plain, err := OpenDeterministic(key, nil, sealed)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error %v is not ErrAuth", err)
			}
			return
		}
		if !bytes.Equal(SealDeterministic(key, nil, plain), sealed) {
			t.Fatal("accepted bytes that Seal would not produce")
		}
	})
}

func FuzzOpenRandom(f *testing.F) {
	key := testKey(2)
	sealed, err := SealRandom(key, nil, []byte("pack header"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		if _, err := OpenRandom(key, nil, sealed, ad); err != nil && !errors.Is(err, ErrAuth) {
			t.Fatalf("error %v is not ErrAuth", err)
		}
	})
}

func FuzzOpenWith(f *testing.F) {
	priv := PrivateKey(testKey(3))
	other := PrivateKey(testKey(4))
	for _, recipients := range [][]PublicKey{{priv.Public()}, {other.Public(), priv.Public()}, {other.Public()}} {
		sealed, err := SealTo([]byte("payload"), recipients...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
	}
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 255})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		plain, err := OpenWith(priv, sealed)
		if err == nil && plain == nil {
			t.Fatal("nil plaintext without an error")
		}
	})
}

// FuzzUnwrapWithPassword fuzzes the header parser on every input and runs the
// KDF only for cheap parameters, so the fuzzer explores the format rather
// than argon2's running time.
func FuzzUnwrapWithPassword(f *testing.F) {
	wrapped, err := WrapWithPassword([]byte("pw"), []byte("secret"), TestKDFParams)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wrapped, []byte("pw"))
	f.Add(wrapped[:wrapHeaderLen], []byte("pw"))
	f.Fuzz(func(t *testing.T, wrapped, password []byte) {
		params, _, _, err := parseWrapped(wrapped)
		if err != nil {
			return
		}
		if params.Time > 2 || params.Memory > 1024 {
			t.Skip("expensive parameters")
		}
		if _, err := UnwrapWithPassword(password, wrapped); err != nil && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("valid header, but error %v is not ErrWrongPassword", err)
		}
	})
}

// FuzzDecodeKeyFiles feeds one input to every key file decoder. The
// password-wrapped ones are reached through the seeds (which are valid files)
// and through wrapping the fuzzed bytes, so the JSON layer inside is fuzzed
// too.
func FuzzDecodeKeyFiles(f *testing.F) {
	priv := PrivateKey(testKey(5))
	seeds := []func() ([]byte, error){
		func() ([]byte, error) { return EncodeOrgKey(OrgKey{Secret: testKey(6), RecoveryPublic: priv.Public()}) },
		func() ([]byte, error) { return EncodeHostKey(HostKey{Host: "pc", Private: priv}) },
		func() ([]byte, error) { return NewHostEnvelope("pc", testKey(7), priv.Public()) },
		func() ([]byte, error) {
			return []byte(`{"kind":"costor repository keys","version":1,"org_secret":"AQ==","pack_key":null,"recovery_private":""}`), nil
		},
		func() ([]byte, error) {
			return []byte(`{"kind":"costor recovery key","version":1,"private":"` + priv.Public().String() + `"}`), nil
		},
	}
	for _, seed := range seeds {
		data, err := seed()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := DecodeOrgKey(data); err == nil && k.Secret == (Key{}) {
			t.Fatal("org key with a zero secret accepted")
		}
		if k, err := DecodeHostKey(data); err == nil && k.Host == "" {
			t.Fatal("host key without a host accepted")
		}
		if env, err := DecodeHostEnvelope(data); err == nil {
			_, _ = env.Open(priv)
		}
		wrapped, err := wrapWithPassword(bytes.NewReader(make([]byte, saltSize+NonceSize)), []byte("pw"), data, TestKDFParams)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = DecodeRepoKeys(wrapped, []byte("pw"))
		_, _ = DecodeRecoveryKey(wrapped, []byte("pw"))
		if params, _, _, err := parseWrapped(data); err == nil && params.Time <= 2 && params.Memory <= 1024 {
			_, _ = DecodeRepoKeys(data, []byte("pw"))
		}
	})
}
