package fsmeta

import (
	"testing"

	"github.com/costor/costor/repo/tree"
)

func TestSame(t *testing.T) {
	base := tree.Node{Name: "f", Type: tree.File, Size: 10, MTime: 100, CTime: 200, ATime: 300, Inode: 42, Device: 7, Mode: 0o644}
	tests := []struct {
		name   string
		change func(*tree.Node)
		want   bool
	}{
		{"identical", func(*tree.Node) {}, true},
		{"atime only", func(n *tree.Node) { n.ATime++ }, true},
		{"device only", func(n *tree.Node) { n.Device++ }, true},
		{"size", func(n *tree.Node) { n.Size++ }, false},
		{"mtime by 1ns", func(n *tree.Node) { n.MTime++ }, false},
		{"ctime", func(n *tree.Node) { n.CTime++ }, false},
		{"inode", func(n *tree.Node) { n.Inode++ }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			tt.change(&b)
			if got := Same(&base, &b); got != tt.want {
				t.Errorf("Same = %v, want %v", got, tt.want)
			}
			if got := Same(&b, &base); got != tt.want {
				t.Errorf("Same (swapped) = %v, want %v", got, tt.want)
			}
		})
	}
}
