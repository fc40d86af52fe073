//go:build unix

package gateway

import "syscall"

// allocChunk returns n bytes of an anonymous private mapping: outside the
// Go heap, resident only as written, and returned to the system at once
// by freeChunk.
func allocChunk(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// freeChunk unmaps a chunk of allocChunk; nothing may refer to it after.
func freeChunk(c []byte) { _ = syscall.Munmap(c) }
