#!/usr/bin/env bash
# Run a command on a real KVM shadow MMU where this machine has none: boot Debian's own Linux
# kernel under QEMU's software emulation (TCG) with an emulated AMD SVM CPU, load kvm and kvm-amd
# with npt=0 (no nested paging: KVM's shadow MMU), and run the command inside, as root, with
# /dev/kvm and tracefs. Used by smmu-kvmdiff's live tests when /dev/kvm is missing or is not a
# shadow MMU.
#
#   tools/nested/nested.sh [options] -- COMMAND [ARG...]
#     --out DIR      copy the guest's /out (files the command writes there) to DIR afterwards
#     --add PATH     copy PATH (file or folder) into the guest at the same path (repeatable);
#                    an executable's shared libraries come with it
#     --timeout S    give up after S seconds (default 1200)
#     --kernel REL   boot Debian's Linux REL (e.g. 6.18.15+deb13-amd64) instead of the default;
#                    same as SMMU_NESTED_KERNEL=REL
#     --check        only say whether a nested run is possible here, and why not (exit 0 / 77)
#   Environment: SMMU_NESTED_CACHE (default ~/.cache/smmu-nested) keeps the kernel;
#   SMMU_NESTED_KVM_ARGS (default "") adds kvm.ko parameters, e.g. "tdp_mmu=0";
#   SMMU_NESTED_KERNEL (default "": the default kernel below) chooses the kernel release;
#   SMMU_NESTED_MIRROR (default http://deb.debian.org/debian) and SMMU_NESTED_SUITES (default
#   "trixie-backports trixie bookworm-backports bookworm", searched in order) say where to find it.
#
# Exit status: the command's, or 77 when no nested run is possible (said why on stderr), or 70
# when the guest did not report the command's end (boot failure, timeout; its console is shown).
# The kernel, by default: Debian's linux-image-amd64 of this machine's release, fetched once with
# `apt-get download` (root, Debian only). A chosen release (--kernel) is fetched once from the
# mirror's package indexes instead (any suite, no root: its .deb by the index's Filename, checked
# against the index's SHA256; about 110-170 MB for a 6.12-6.18 kernel). Either way only the
# kernel and the modules kvm-amd needs are kept (about 15 MB). Its release and the kvm
# parameters are printed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SMMU_NESTED_CACHE:-${HOME:-/root}/.cache/smmu-nested}
kernel=${SMMU_NESTED_KERNEL:-}
mirror=${SMMU_NESTED_MIRROR:-http://deb.debian.org/debian}
suites=${SMMU_NESTED_SUITES:-trixie-backports trixie bookworm-backports bookworm}
out="" timeout_s=1200 check=0 adds=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift 2 ;;
	--add) adds+=("$2"); shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--check) check=1; shift ;;
	--) shift; break ;;
	*) echo "nested: unknown option $1" >&2; exit 2 ;;
	esac
done

skip() { echo "nested: skipped: $*" >&2; exit 77; }

# ---- what a nested run needs ---------------------------------------------------------------
for tool in qemu-system-x86_64 busybox cpio; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ "$tool" != cpio ]; then
		skip "$tool not found (Debian: apt-get install qemu-system-x86 busybox-static)"
	fi
done
busybox_bin=$(command -v busybox)
if ! file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked' &&
	! ldd "$busybox_bin" 2>&1 | grep -q 'not a dynamic'; then
	skip "$busybox_bin is not statically linked (apt-get install busybox-static)"
fi

# Copy what a boot needs from an unpacked kernel package tree $1 into the new cache entry $2:
# the kernel, its release, and the modules kvm-amd needs (decompressed: busybox insmod takes
# only plain .ko files, and trixie's kernels ship .ko.xz).
take_kernel() {
	local tree=$1 dest=$2 k m mod f
	m=$(ls -d "$tree"/lib/modules/*/ "$tree"/usr/lib/modules/*/ 2>/dev/null | head -1)
	k=$(ls "$tree"/boot/vmlinuz-* "$m"vmlinuz 2>/dev/null | head -1) # 7.x: in the modules' folder
	[ -n "$k" ] && [ -n "$m" ] || { echo "nested: no vmlinuz or no modules in the package" >&2; return 1; }
	mkdir -p "$dest/mods"
	cp "$k" "$dest/vmlinuz"
	basename "$m" >"$dest/release"
	for mod in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd; do
		f=$(ls "$m/kernel/$mod".ko* 2>/dev/null | head -1)
		[ -n "$f" ] || { echo "nested: the package has no $mod module" >&2; return 1; }
		case $f in
		*.ko) cp "$f" "$dest/mods/" ;;
		*.ko.xz) xz -dc "$f" >"$dest/mods/$(basename "$mod").ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$dest/mods/$(basename "$mod").ko" ;;
		*.ko.gz) gzip -dc "$f" >"$dest/mods/$(basename "$mod").ko" ;;
		*) echo "nested: $f: unknown module compression" >&2; return 1 ;;
		esac
	done
}

# The default kernel: Debian's linux-image-amd64 of this machine's release, by apt-get download.
default_kernel_dir() {
	local pkg deb
	ls -d "$cache"/linux-image-*/ 2>/dev/null | sort -V | tail -1 | sed 's:/$::' && return 0
	command -v apt-get >/dev/null 2>&1 || return 1
	[ "$(id -u)" -eq 0 ] || return 1
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || { apt-get update -q >/dev/null 2>&1 || true;
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
	[ -n "$pkg" ] || return 1
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download "$pkg" >/dev/null 2>&1) || return 1
	deb=$(ls "$cache/dl/${pkg}"_*.deb | head -1)
	rm -rf "$cache/$pkg.tmp" && mkdir -p "$cache/$pkg.tmp"
	dpkg-deb -x "$deb" "$cache/$pkg.tmp/root"
	take_kernel "$cache/$pkg.tmp/root" "$cache/$pkg.tmp" || return 1
	rm -rf "$cache/$pkg.tmp/root" "$cache/dl"
	mv "$cache/$pkg.tmp" "$cache/$pkg"
	echo "$cache/$pkg"
}

# A chosen kernel release ($SMMU_NESTED_KERNEL, e.g. 6.18.15+deb13-amd64), from any suite the
# mirror serves: the first suite whose Packages.xz lists linux-image-RELEASE gives its .deb (and
# linux-binary-RELEASE and linux-modules-RELEASE where it lists them: 7.x kernels are split so),
# each checked against the index's SHA256. No root, no apt: curl or wget, xz, dpkg-deb. Kept in
# $cache/release/RELEASE (not among the default's $cache/linux-image-*).
chosen_kernel_dir() {
	local rel=$1 dest="$cache/release/$1" tmp suite pkg stanza file sum deb found=""
	[ -f "$dest/vmlinuz" ] && { echo "$dest"; return 0; }
	command -v dpkg-deb >/dev/null 2>&1 || { echo "nested: dpkg-deb is needed to unpack the kernel" >&2; return 1; }
	fetch() { if command -v curl >/dev/null 2>&1; then curl -fsS -o "$2" "$1"; else wget -q -O "$2" "$1"; fi; }
	tmp="$dest.tmp" && rm -rf "$tmp" && mkdir -p "$tmp/root" "$cache/dl"
	for pkg in "linux-image-$rel" "linux-binary-$rel" "linux-modules-$rel"; do
		stanza=""
		for suite in $suites; do
			[ -f "$tmp/Packages-$suite" ] ||
				{ fetch "$mirror/dists/$suite/main/binary-amd64/Packages.xz" "$tmp/Packages-$suite.xz" &&
				  xz -d "$tmp/Packages-$suite.xz"; } || : >"$tmp/Packages-$suite"
			stanza=$(awk -v p="$pkg" 'BEGIN { RS = "" } index("\n" $0 "\n", "\nPackage: " p "\n") { print; exit }' "$tmp/Packages-$suite")
			[ -n "$stanza" ] && break
		done
		if [ -z "$stanza" ]; then
			[ "$pkg" = "linux-image-$rel" ] || continue
			echo "nested: no suite of $mirror ($suites) has linux-image-$rel" >&2
			return 1
		fi
		file=$(sed -n 's/^Filename: //p' <<<"$stanza")
		sum=$(sed -n 's/^SHA256: //p' <<<"$stanza")
		deb="$cache/dl/$(basename "$file")"
		if ! echo "$sum  $deb" | sha256sum -c --status 2>/dev/null; then
			echo "nested: fetching $pkg from $suite ($(sed -n 's/^Size: //p' <<<"$stanza") bytes)" >&2
			fetch "$mirror/$file" "$deb" || { echo "nested: $mirror/$file: download failed" >&2; return 1; }
			echo "$sum  $deb" | sha256sum -c --status ||
				{ echo "nested: $deb: SHA256 differs from $suite's index" >&2; rm -f "$deb"; return 1; }
		fi
		dpkg-deb -x "$deb" "$tmp/root" || return 1
		found="$found $deb"
	done
	take_kernel "$tmp/root" "$tmp" || return 1
	rm -rf "$tmp/root" "$tmp"/Packages-* $found
	mv "$tmp" "$dest"
	echo "$dest"
}

if [ -n "$kernel" ]; then
	kdir=$(chosen_kernel_dir "$kernel") || { rm -rf "$cache/release/$kernel.tmp";
		skip "Linux $kernel could not be had for the nested guest (mirror $mirror, suites: $suites)"; }
else
	kdir=$(default_kernel_dir) || skip "no kernel for the nested guest in $cache, and none could be fetched (needs root and Debian's apt: apt-get download linux-image-amd64's kernel)"
fi
[ -f "$kdir/vmlinuz" ] || skip "$kdir has no vmlinuz"
if [ "$check" = 1 ]; then
	echo "nested: possible: Linux $(cat "$kdir/release") under qemu-system-x86_64 (TCG, SVM, npt=0)"
	exit 0
fi
[ $# -gt 0 ] || { echo "nested: no command given" >&2; exit 2; }

# ---- the initramfs -----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/smmu-nested.XXXXXX")
[ "${SMMU_NESTED_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,proc,sys,dev,tmp,out,mods}
cp "$busybox_bin" "$root/bin/busybox"
cp "$kdir"/mods/*.ko* "$root/mods/"

libdirs="" # where the libraries were found: the guest looks there (an rpath may be relative)
add_path() { # copy $1 into the guest at the same path, with an executable's libraries
	local p=$1 lib
	mkdir -p "$root$(dirname "$p")"
	cp -a "$p" "$root$(dirname "$p")/"
	if [ -f "$p" ] && [ -x "$p" ]; then
		if ldd "$p" 2>/dev/null | grep -q 'not found'; then
			echo "nested: $p: a shared library is not found here:" >&2
			ldd "$p" | grep 'not found' >&2
			exit 2
		fi
		for lib in $(ldd "$p" 2>/dev/null | grep -o '/[^ ]*' || true); do
			libdirs="$libdirs:$(dirname "$lib")"
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	fi
}
for p in "${adds[@]}"; do add_path "$(readlink -f "$p")"; done
# The command: a path (relative ones resolved here) comes with its libraries.
if [[ $1 == */* ]] && [ -e "$1" ]; then
	cmd=$(readlink -f "$1")
	shift
	set -- "$cmd" "$@"
	add_path "$1"
fi

{
	echo '#!/bin/busybox sh'
	echo '/bin/busybox --install -s /bin'
	echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
	echo 'mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null'
	echo 'echo always > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null'
	# khugepaged would collapse small host pages of THP slots at random times (every 10 s by
	# default): each collapse is an MMU-notifier invalidation, a flush and zaps that no scenario
	# asked for. Put it to sleep for good, so that every run of a scenario does the same.
	echo 'for f in scan_sleep_millisecs alloc_sleep_millisecs; do echo 4294967295 > /sys/kernel/mm/transparent_hugepage/khugepaged/$f; done 2>/dev/null'
	echo 'insmod /mods/irqbypass.ko && insmod /mods/kvm.ko '"${SMMU_NESTED_KVM_ARGS:-}"' && insmod /mods/ccp.ko && insmod /mods/kvm-amd.ko npt=0 || echo "nested: kvm did not load"'
	echo 'echo "nested: kernel $(uname -r), kvm: tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) npt=$(cat /sys/module/kvm_amd/parameters/npt) mmio_caching=$(cat /sys/module/kvm/parameters/mmio_caching 2>/dev/null)"'
	echo 'cd /out'
	printf 'LD_LIBRARY_PATH=%q SMMU_NESTED=1 %s\n' "${libdirs#:}" "$(printf '%q ' "$@")"
	echo 'rc=$?'
	echo 'cd /; echo "@@SMMU-NESTED-OUT@@"; tar -C /out -czf - . | base64; echo "@@SMMU-NESTED-END@@ $rc"'
	echo 'poweroff -f'
} >"$root/init"
chmod +x "$root/init"
(cd "$root" && find . | "$busybox_bin" cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")

# ---- the run -----------------------------------------------------------------------------------
console="$work/console.log"
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu qemu64,+svm -m 3072 -smp 1 \
	-nographic -no-reboot -kernel "$kdir/vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 transparent_hugepage=always" </dev/null >"$console" 2>&1 || true
tr -d '\r' <"$console" >"$console.txt"
end=$(grep -a '^@@SMMU-NESTED-END@@' "$console.txt" | tail -1 || true)
if [ -z "$end" ]; then
	echo "nested: the guest did not report the command's end; its console:" >&2
	tail -40 "$console.txt" >&2
	exit 70
fi
# What the command printed, without the kernel's boot lines and the archive.
sed -n '/nested: kernel/,/^@@SMMU-NESTED-OUT@@/p' "$console.txt" | grep -av '^@@SMMU-NESTED-OUT@@' |
	grep -av '^\[ *[0-9]*\.[0-9]*\]' | sed 's/^.*nested: kernel/nested: kernel/' || true
if [ -n "$out" ]; then
	mkdir -p "$out"
	sed -n '/^@@SMMU-NESTED-OUT@@/,/^@@SMMU-NESTED-END@@/p' "$console.txt" | grep -av '^@@' |
		base64 -d 2>/dev/null | tar -C "$out" -xzf -
fi
exit "${end##* }"
