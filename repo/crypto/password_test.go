package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestWrapWithPassword(t *testing.T) {
	plain := []byte(`{"secret":"..."}`)
	wrapped, err := WrapWithPassword([]byte("correct horse"), plain, TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapWithPassword([]byte("correct horse"), wrapped)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("UnwrapWithPassword = %q, %v", got, err)
	}
	if _, err := UnwrapWithPassword([]byte("correct horse "), wrapped); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
	}
	if ErrWrongPassword.Error() != "wrong password" {
		t.Fatalf("ErrWrongPassword says %q", ErrWrongPassword)
	}
	// Salt and ciphertext tampering read as a wrong password; the header is AD.
	for _, i := range []int{10, 25, wrapHeaderLen, len(wrapped) - 1} {
		tampered := bytes.Clone(wrapped)
		tampered[i] ^= 1
		if _, err := UnwrapWithPassword([]byte("correct horse"), tampered); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("byte %d flipped: got %v, want ErrWrongPassword", i, err)
		}
	}
	again, err := WrapWithPassword([]byte("correct horse"), plain, TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again[10:wrapHeaderLen], wrapped[10:wrapHeaderLen]) {
		t.Fatal("two wraps share a salt")
	}
}

func TestUnwrapWithPasswordRejectsHeaders(t *testing.T) {
	wrapped, err := WrapWithPassword([]byte("pw"), []byte("x"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte)) []byte { b := bytes.Clone(wrapped); f(b); return b }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short", wrapped[:wrapHeaderLen+Overhead-1], "truncated"},
		{"version", with(func(b []byte) { b[0] = 9 }), "unsupported version 9"},
		{"zero time", with(func(b []byte) { binary.BigEndian.PutUint32(b[1:], 0) }), "time"},
		{"huge time", with(func(b []byte) { binary.BigEndian.PutUint32(b[1:], 1<<31) }), "time"},
		{"huge memory", with(func(b []byte) { binary.BigEndian.PutUint32(b[5:], 1<<31) }), "memory"},
		{"tiny memory", with(func(b []byte) { binary.BigEndian.PutUint32(b[5:], 7) }), "memory"},
		{"zero threads", with(func(b []byte) { b[9] = 0 }), "threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnwrapWithPassword([]byte("pw"), tt.data)
			if err == nil || errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := WrapWithPassword([]byte("pw"), nil, KDFParams{Time: 1, Memory: 5 << 20, Threads: 1}); err == nil {
		t.Fatal("wrapping with 5 GiB of memory succeeded")
	}
}
