#!/usr/bin/env bash
# README's test command: install what is missing, build into build-test/, run every test
# (unit, audit, stress, examples, header checks). Extra arguments go to `meson test`,
# e.g. `bash .ci/test.sh --suite unit`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

smmu_need_packages build-essential meson ninja-build pkg-config libcmocka-dev libjemalloc-dev

builddir=${SMMU_TEST_BUILDDIR:-build-test}
if [ -f "$builddir/meson-private/coredata.dat" ]; then
	meson setup --reconfigure "$builddir"
else
	meson setup "$builddir"
fi
meson compile -C "$builddir"
meson test -C "$builddir" --print-errorlogs "$@"
