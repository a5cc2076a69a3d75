#!/usr/bin/env bash
# Installs the amd64 .deb into a throwaway Debian root (debootstrap + chroot), by hand, not in
# CI (it downloads a minimal Debian): `apt install ./orderd_*.deb`, then `orderd check-config`
# on the installed conffile, the unit, man page and completions in place, an upgrade (reinstall)
# that keeps the data, and a purge that removes it.
#   scripts/package.sh && scripts/install-test.sh
# Needs root; installs debootstrap when missing; keeps the base tarball in target/ for reuse.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(ls -t target/debian/orderd_*_amd64.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "no target/debian/orderd_*_amd64.deb: run scripts/package.sh first" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }

root=$(mktemp -d)
cleanup() {
  for m in proc dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf "$root"
}
trap cleanup EXIT

tarball="$PWD/target/debootstrap-bookworm-minbase.tgz"
if [ ! -f "$tarball" ]; then
  debootstrap --variant=minbase --make-tarball="$tarball" bookworm "$root.tmp" http://deb.debian.org/debian
  rm -rf "$root.tmp"
fi
debootstrap --variant=minbase --unpack-tarball="$tarball" bookworm "$root" http://deb.debian.org/debian
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/orderd.deb"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo "== install"
in_root apt-get update -qq
in_root apt-get install -y -qq /tmp/orderd.deb >/dev/null
in_root orderd --version
in_root orderd check-config --config /etc/orderd/orderd.toml
for f in /usr/lib/systemd/system/orderd.service /usr/share/man/man1/orderd.1.gz \
         /usr/share/bash-completion/completions/orderd /etc/orderd/orderd.toml; do
  [ -e "$root$f" ] || { echo "missing $f after install" >&2; exit 1; }
done

echo "== upgrade keeps the data"
mkdir -p "$root/var/lib/orderd"
echo keep > "$root/var/lib/orderd/marker"
in_root apt-get install -y -qq --reinstall /tmp/orderd.deb >/dev/null
[ "$(cat "$root/var/lib/orderd/marker")" = keep ] || { echo "the upgrade lost the data" >&2; exit 1; }

echo "== remove keeps it, purge removes it"
in_root apt-get remove -y -qq orderd >/dev/null
[ -e "$root/var/lib/orderd/marker" ] || { echo "remove deleted the data" >&2; exit 1; }
in_root apt-get purge -y -qq orderd >/dev/null
[ ! -e "$root/var/lib/orderd" ] || { echo "purge left /var/lib/orderd" >&2; exit 1; }
[ ! -e "$root/etc/orderd" ] || { echo "purge left /etc/orderd" >&2; exit 1; }
echo "install test: OK ($deb in a Debian bookworm root)"
