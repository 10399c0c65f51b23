#!/usr/bin/env bash
# The one test command of costor: `sudo ./scripts/test.sh`.
#
# On a fresh Debian 12 machine with Go installed it installs what the tests
# need (apt packages only when missing, a pinned staticcheck), then runs the
# formatting, vet and lint checks, the cross-builds, the unit tests with the
# race detector, and the end-to-end tests of the built binary (tests/).
# Any failure stops it with a non-zero exit. Run as root: the end-to-end tests
# that need root (device nodes, owners, mounts) skip otherwise, and fail
# when CI is set.
set -euo pipefail

# System packages the tests use. Later issues extend this list
# (fuse3 for mount tests, btrfs-progs/lvm2 for snapshot adapters, ...).
APT_PACKAGES=(
	coreutils  # cp -a, used to check the tree comparison against a known-good copy
	util-linux # mount/umount (tmpfs for --one-file-system)
	e2fsprogs  # mkfs.ext4 for loop-mounted test filesystems
	gcc        # cgo, which -race needs
	libc6-dev
	fuse3      # fusermount3, and /etc/fuse.conf, for the mount tests
	btrfs-progs          # mkfs.btrfs and btrfs subvolume, for the live backup tests
	postgresql-15        # initdb, postgres, pgbench: a live database under load (tests/live_test.go)
	postgresql-client-15 # psql, pg_dump, pg_amcheck
)

# Pinned: the version built and checked with Go 1.26.
STATICCHECK_VERSION=v0.8.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
	printf '\n==== %s ====\n' "$*"
}

# sudo resets PATH; find Go where Debian and the upstream tarball put it.
export PATH="$PATH:/usr/local/go/bin:/usr/lib/go/bin"
if ! command -v go >/dev/null; then
	echo "test.sh: go not found; install Go (see go.mod for the version)" >&2
	exit 1
fi
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"

section "system packages"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "test.sh: missing packages ${missing[*]}; run as root (sudo ./scripts/test.sh) to install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "all present: ${APT_PACKAGES[*]}"
fi

section "staticcheck $STATICCHECK_VERSION"
if ! staticcheck -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
staticcheck -version

if [[ $(id -u) -ne 0 ]]; then
	echo "test.sh: not root: root-only end-to-end tests will skip (and fail if CI is set)" >&2
fi

section "gofmt"
unformatted="$(gofmt -l . | grep -v '^tests/tmp/' || true)"
if [[ -n $unformatted ]]; then
	echo "not gofmt'ed:" >&2
	echo "$unformatted" >&2
	exit 1
fi

section "go vet"
go vet ./...

section "staticcheck"
staticcheck ./...

for goos in windows darwin; do
	section "GOOS=$goos go build"
	GOOS=$goos go build ./...
	section "GOOS=$goos go vet"
	GOOS=$goos go vet ./...
done

section "unit tests (race)"
mapfile -t unit_packages < <(go list ./... | grep -v '/tests$')
go test -race -count=1 -timeout 20m "${unit_packages[@]}"

section "end-to-end tests"
go test -race -count=1 -timeout 25m ./tests/

section "all tests passed"
