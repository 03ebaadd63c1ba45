# shellcheck shell=bash
# Sourced by .ci/test.sh, .ci/bench.sh and .ci/run: make sure Debian packages are installed.
#
# smmu_need_packages PKG...  installs the missing ones with apt-get when run as root on a
# Debian-like system; otherwise prints the command to run and fails. On a system without dpkg it
# only checks that the build tools are on PATH (install the equivalents yourself).

smmu_apt_updated=${smmu_apt_updated:-0}

smmu_apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if [ "$smmu_apt_updated" != 1 ]; then
		apt-get update -q
		smmu_apt_updated=1
	fi
	apt-get install -y -q --no-install-recommends "$@"
}

smmu_need_packages() {
	local p missing=()
	if ! command -v dpkg-query >/dev/null 2>&1; then
		for p in cc meson ninja pkg-config; do
			if ! command -v "$p" >/dev/null 2>&1; then
				echo "error: '$p' not found; install a C compiler, meson, ninja and pkg-config" >&2
				return 1
			fi
		done
		return 0
	fi
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "==> installing missing packages: ${missing[*]}"
		smmu_apt_install "${missing[@]}"
	else
		echo "error: missing packages: ${missing[*]}" >&2
		echo "       install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
		return 1
	fi
}
