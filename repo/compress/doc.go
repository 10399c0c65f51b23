// Package compress frames blob plaintext before sealing: one flag byte says
// whether the rest is zstd-compressed or stored raw. Incompressible data is
// stored raw so it never grows by more than the flag byte, and decoding is
// bounded by the caller's expected length so a hostile blob cannot make us
// allocate more than it claims.
package compress
