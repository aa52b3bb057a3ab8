# Shared bash helpers for building busybox initramfs images from the machine's own Debian kernel
# package. Sourced by tests/host/run and tests/linux/build-artifacts; not executable on its own.

# Print the version of the newest /boot/vmlinuz-VERSION that has a matching /lib/modules/VERSION,
# because the initramfs images must carry modules built for exactly that kernel.
kernel_version() {
	local image version best=
	for image in /boot/vmlinuz-*; do
		version=${image#/boot/vmlinuz-}
		[[ -d /lib/modules/$version ]] || continue
		best=$(printf '%s\n%s\n' "$best" "$version" | sort -V | tail -n 1)
	done
	if [[ -z $best ]]; then
		echo "error: no /boot/vmlinuz-VERSION with /lib/modules/VERSION found;" \
			"install linux-image-amd64" >&2
		return 1
	fi
	echo "$best"
}

# Write to OUT the uncompressed ELF kernel (vmlinux) inside /boot/vmlinuz-KVER, atomically.
# QEMU starts such an image at its PVH entry point, which skips the bzImage decompressor:
# under TCG that saves about 3.5 s per boot (measured on a 2-core development machine).
# Fails when the kernel lacks CONFIG_PVH or uses a compression other than xz, gzip or zstd.
kernel_extract_vmlinux() {
	local kver=$1 out=$2 image=/boot/vmlinuz-$1
	local setup_sectors payload_offset payload_length payload magic
	grep -qx 'CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null || return 1

	# Boot protocol header: setup_sects at 0x1f1, payload_offset and payload_length at 0x248,
	# the offset counted from the protected-mode code that follows the setup sectors.
	setup_sectors=$(od -An -tu1 -j $((0x1f1)) -N1 "$image" | tr -d ' ')
	read -r payload_offset payload_length < <(od -An -tu4 -j $((0x248)) -N8 "$image")
	payload=$(((setup_sectors + 1) * 512 + payload_offset))
	magic=$(od -An -tx1 -j "$payload" -N4 "$image" | tr -d ' ')

	local decompress
	case $magic in
	fd377a58) decompress=(xz -dc --single-stream) ;;
	1f8b*) decompress=(gzip -dc) ;;
	28b52ffd) decompress=(zstd -qdc) ;;
	*) return 1 ;;
	esac
	# The payload ends with its uncompressed size, which the stream decoders ignore or warn on.
	tail -c +$((payload + 1)) "$image" | head -c "$payload_length" |
		"${decompress[@]}" >"$out.tmp.$$" 2>/dev/null || true
	if ! od -An -c -N4 "$out.tmp.$$" | grep -q 'E   L   F'; then
		rm -f "$out.tmp.$$"
		return 1
	fi
	mv -f "$out.tmp.$$" "$out"
}

# Print the module files (paths relative to /lib/modules/KVER) needed to load each named module,
# dependencies first, each once. Names may use '-' or '_' (virtio-rng and virtio_rng are the same).
modules_resolve() {
	local kver=$1
	shift
	awk -v wanted="$*" '
		function name_of(path) {
			sub(/.*\//, "", path)
			sub(/\.ko(\.[a-z]+)?$/, "", path)
			gsub(/-/, "_", path)
			return path
		}
		# modules.dep lists a dependency after every module that needs it, so walking a
		# line backwards and recursing gives a valid load order.
		function visit(name,   count, parts, i) {
			if (name in seen)
				return
			seen[name] = 1
			count = split(deps[name], parts, " ")
			for (i = count; i >= 1; i--)
				visit(name_of(parts[i]))
			print file[name]
		}
		{
			path = substr($1, 1, length($1) - 1)
			name = name_of(path)
			file[name] = path
			deps[name] = substr($0, length($1) + 2)
		}
		END {
			count = split(wanted, list, " ")
			for (i = 1; i <= count; i++) {
				name = list[i]
				gsub(/-/, "_", name)
				if (!(name in file)) {
					printf "error: module %s not found in modules.dep\n", list[i] > "/dev/stderr"
					exit 1
				}
				visit(name)
			}
		}' "/lib/modules/$kver/modules.dep"
}

# Fill DIR with a static busybox, a link for each of its applets under /bin (/sbin points there)
# and the usual empty mount points.
initramfs_stage_busybox() {
	local dir=$1 applet
	if ! file -L /usr/bin/busybox | grep -q 'statically linked'; then
		echo "error: /usr/bin/busybox is not statically linked; install busybox-static" >&2
		return 1
	fi
	mkdir -p "$dir"/{bin,dev,etc,lib/modules,mnt,proc,root,sys,tmp}
	ln -s bin "$dir/sbin"
	cp /usr/bin/busybox "$dir/bin/busybox"
	for applet in $(/usr/bin/busybox --list); do
		[[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
	done
}

# Copy the named modules of kernel KVER and their dependencies into DIR/lib/modules (flat,
# uncompressed) and write their file names, in load order, to DIR/etc/modules.list.
initramfs_stage_modules() {
	local dir=$1 kver=$2
	shift 2
	local files path name
	files=$(modules_resolve "$kver" "$@")
	: >"$dir/etc/modules.list"
	for path in $files; do
		name=${path##*/}
		name=${name%.ko*}.ko
		case $path in
		*.ko) cp "/lib/modules/$kver/$path" "$dir/lib/modules/$name" ;;
		*.ko.xz) xz -dc "/lib/modules/$kver/$path" >"$dir/lib/modules/$name" ;;
		*.ko.zst) zstd -qdc "/lib/modules/$kver/$path" >"$dir/lib/modules/$name" ;;
		*) echo "error: unsupported module file $path" >&2; return 1 ;;
		esac
		echo "$name" >>"$dir/etc/modules.list"
	done
}

# Pack DIR into the gzip-compressed newc cpio archive OUT, replacing OUT atomically so that
# concurrent builders never see a half-written archive.
initramfs_pack() {
	local dir=$1 out=$2
	mkdir -p "$(dirname "$out")"
	(cd "$dir" && find . -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -1 >"$out.tmp.$$"
	mv -f "$out.tmp.$$" "$out"
}

# Succeed if OUT is missing or older than any of the given source files.
needs_rebuild() {
	local out=$1 source
	shift
	[[ -e $out ]] || return 0
	for source in "$@"; do
		[[ $source -nt $out ]] && return 0
	done
	return 1
}
