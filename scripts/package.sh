#!/usr/bin/env bash
# Builds orderd's .deb into target/debian/ and checks it (contents, lintian).
#   scripts/package.sh           # for this machine's architecture
#   scripts/package.sh --arm64   # also arm64, cross-built with Debian's gcc-aarch64-linux-gnu,
#                                # then `--version` and `check-config` run under qemu-aarch64
# Installs what it needs (cargo-deb, lintian, the cross toolchain, qemu) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_need() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

apt_need lintian
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked

# cargo-deb writes no md5sums (what `dpkg --verify` and debsums check): unpack, add it, repack.
add_md5sums() {
  local deb=$1 dir
  dir=$(mktemp -d)
  dpkg-deb -R "$deb" "$dir/pkg"
  (cd "$dir/pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
  chmod 0644 "$dir/pkg/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz -b "$dir/pkg" "$deb" >/dev/null
  rm -rf "$dir"
}

check_deb() {
  local deb=$1 bin=$2
  echo "== $deb"
  dpkg-deb --info "$deb" | grep -E 'Package|Version|Architecture|Depends'
  local contents
  contents=$(dpkg-deb -c "$deb")
  for want in ./usr/bin/orderd ./etc/orderd/orderd.toml ./usr/lib/systemd/system/orderd.service \
              ./usr/share/doc/orderd/README.md ./usr/share/man/man1/orderd.1.gz \
              ./usr/share/man/man1/orderd-backup.1.gz \
              ./usr/share/bash-completion/completions/orderd \
              ./usr/share/zsh/vendor-completions/_orderd \
              ./usr/share/fish/vendor_completions.d/orderd.fish; do
    grep -q " $want\$" <<<"$contents" || { echo "missing $want in $deb" >&2; exit 1; }
  done
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/orderd/orderd.toml
  dpkg-deb -I "$deb" md5sums | grep -q ' usr/bin/orderd$' || { echo "$deb has no md5sums" >&2; exit 1; }
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/orderd/orderd.toml | grep -qx 'data_dir = "/var/lib/orderd"' \
    || { echo "$deb: the conffile's data_dir is not /var/lib/orderd" >&2; exit 1; }
  # The declared libc6 must cover the newest glibc symbol the binary uses.
  local need declared
  need=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -V -u | tail -n 1 | cut -d_ -f2)
  declared=$(dpkg-deb -f "$deb" Depends | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
  [ -n "$declared" ] || { echo "$deb declares no libc6 version" >&2; exit 1; }
  dpkg --compare-versions "$declared" ge "$need" \
    || { echo "$deb declares libc6 >= $declared but the binary needs $need" >&2; exit 1; }
  echo "libc6: declared >= $declared, the binary needs $need"
  lintian --fail-on error "$deb"
}

# Completions and man pages come from the CLI itself (the same for every architecture).
cargo build --release --locked -p orderd
assets=target/assets
rm -rf "$assets" && mkdir -p "$assets/man"
# The installed box's configuration: the shipped one with the store in the unit's state
# directory and no demo menu or tables (a real restaurant starts empty; `cargo run` keeps the
# demo). Each change must apply, or the build stops.
installed_config() {
  sed -e 's|^data_dir = "./orderd-data"$|data_dir = "/var/lib/orderd"|' \
      -e 's|^demo_data = true$|demo_data = false|' \
      -e 's|^id = "demo"$|id = "restaurant"|' \
      -e 's|^name = "Demo Restaurant"$|name = "Restaurant"|' \
      -e 's|^# Site id used on MQTT topics|# Set this to your site id (the chain gives it; it must match the collector). Site id used on MQTT topics|' \
      config/orderd.toml
}
installed_config > "$assets/orderd.toml"
for want in '^data_dir = "/var/lib/orderd"$' '^demo_data = false$' '^id = "restaurant"$' '^name = "Restaurant"$' '^# Set this to your site id'; do
  grep -q "$want" "$assets/orderd.toml" || { echo "the installed config lacks $want" >&2; exit 1; }
done
target/release/orderd check-config --config "$assets/orderd.toml" --data-dir "$assets/check-data" >/dev/null
target/release/orderd completions bash > "$assets/orderd.bash"
target/release/orderd completions zsh > "$assets/_orderd"
target/release/orderd completions fish > "$assets/orderd.fish"
target/release/orderd man --dir "$assets/man"
gzip -9n "$assets"/man/*.1

cargo deb -p orderd --no-build
deb=$(ls -t target/debian/orderd_*_"$(dpkg --print-architecture)".deb | head -n 1)
add_md5sums "$deb"
check_deb "$deb" target/release/orderd

if [ "${1:-}" = "--arm64" ]; then
  apt_need gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
  rustup target add aarch64-unknown-linux-gnu
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo deb -p orderd --target aarch64-unknown-linux-gnu
  bin=target/aarch64-unknown-linux-gnu/release/orderd
  qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" --version
  qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" check-config --config config/orderd.toml
  deb=$(ls -t target/aarch64-unknown-linux-gnu/debian/orderd_*_arm64.deb | head -n 1)
  add_md5sums "$deb"
  check_deb "$deb" "$bin"
fi
