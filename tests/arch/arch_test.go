// Package arch checks the import rules of docs/architecture in STYLE.md:
// arrows point one way, and each heavy dependency has exactly one importer.
// It plays the role of a depguard configuration, with no linter to install.
package arch

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/costor/costor"

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		name    string
		imports string   // an import path prefix
		allowed []string // importers allowed (path prefixes)
	}{
		{"only repo/index imports Badger", "github.com/dgraph-io/badger", []string{module + "/repo/index"}},
		{"only cli imports urfave/cli", "github.com/urfave/cli", []string{module + "/cli"}},
		{"only fusefs imports go-fuse", "github.com/hanwen/go-fuse", []string{module + "/fusefs"}},
		{"nothing but cmd imports cli", module + "/cli", []string{module + "/cmd/"}},
		{"repo and server import no agent", module + "/agent", []string{module + "/agent", module + "/cli", module + "/cmd/", module + "/tests", module + "/fusefs"}},
		{"only cli (and tests) import fusefs", module + "/fusefs", []string{module + "/fusefs", module + "/cli", module + "/tests"}},
		{"repo imports no server", module + "/server", []string{module + "/server", module + "/cli", module + "/cmd/", module + "/tests"}},
	}
	pkgs := listPackages(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, p := range pkgs {
				for _, imp := range p.Imports {
					if !strings.HasPrefix(imp, r.imports) {
						continue
					}
					ok := false
					for _, a := range r.allowed {
						if p.ImportPath == strings.TrimSuffix(a, "/") || strings.HasPrefix(p.ImportPath, a) {
							ok = true
						}
					}
					if !ok {
						t.Errorf("%s imports %s", p.ImportPath, imp)
					}
				}
			}
		})
	}
}

// TestAdaptersStandAlone: the fs-snapshot adapters import nothing of costor.
func TestAdaptersStandAlone(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, dir := range []string{"lvm", "vss", "apfs", "btrfs", "zfs"} {
			if p.ImportPath != module+"/"+dir && !strings.HasPrefix(p.ImportPath, module+"/"+dir+"/") {
				continue
			}
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module+"/") {
					t.Errorf("adapter %s imports %s", p.ImportPath, imp)
				}
			}
		}
	}
}
