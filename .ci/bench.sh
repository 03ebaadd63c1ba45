#!/usr/bin/env bash
# README's main-job command: install what is missing, build a release build into build/
# (an existing build/ is reused as configured), run the headline benchmark: build/bench/smmu-bench
# with no arguments. Extra arguments go to smmu-bench.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

smmu_need_packages build-essential meson ninja-build pkg-config libjemalloc-dev gnuplot-nox

builddir=build
if [ ! -f "$builddir/meson-private/coredata.dat" ]; then
	meson setup "$builddir" --buildtype=release -Db_ndebug=if-release \
		-Dtests=disabled -Dexamples=disabled
fi
meson compile -C "$builddir"
exec "$builddir/bench/smmu-bench" "$@"
