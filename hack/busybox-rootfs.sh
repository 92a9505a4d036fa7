#!/bin/sh
# busybox-rootfs.sh OUT.tar: writes a minimal busybox root filesystem as a
# tar, made offline from Debian's busybox-static: /bin/busybox, a relative
# symlink per applet (`busybox --list-full`), /etc/passwd and /etc/group,
# /tmp and /var/tmp (1777). Owners are 0:0, entries sorted and times fixed,
# so the same busybox gives a byte-identical tar and an ADD of it stays
# cached across runs.
set -eu

out=${1:?usage: busybox-rootfs.sh OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}
# A fixed time keeps the tar reproducible; SOURCE_DATE_EPOCH overrides it.
mtime=${SOURCE_DATE_EPOCH:-0}

[ -x "$busybox" ] || { echo "busybox-rootfs.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

for d in bin sbin usr/bin usr/sbin etc root proc sys dev tmp var/tmp; do
	mkdir -p "$root/$d"
done
chmod 0755 "$root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"

"$busybox" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	dir=$(dirname "$applet")
	# One "../" per directory level below the root, then bin/busybox.
	up=$(echo "$dir/" | sed 's|[^/]*/|../|g')
	target=${up}bin/busybox
	[ "$dir" = bin ] && target=busybox
	mkdir -p "$root/$dir"
	ln -sf "$target" "$root/$applet"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

mkdir -p "$(dirname "$out")"
tar -C "$root" --sort=name --owner=0 --group=0 --numeric-owner \
	--mtime="@$mtime" --format=posix \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-cf "$out.tmp" .
mv "$out.tmp" "$out"
