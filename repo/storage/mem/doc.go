// Package mem is an in-memory storage.Storage for tests: a map under a mutex.
// It keeps the whole contract (it runs storagetest), copies bytes on Save so
// callers may reuse their buffers, and refuses to overwrite an object with
// different bytes (storage.ErrExist), which catches callers that break
// immutability.
package mem
