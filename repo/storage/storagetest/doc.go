// Package storagetest is the conformance suite for storage.Storage. Every
// backend's tests call Run, so each clause of the contract written on
// storage.Storage is checked once, in one place, against every backend.
package storagetest
