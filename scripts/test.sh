#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs the system packages the tests need when they are missing (Debian, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages used by tests: mosquitto and its clients (interop with an external broker),
# systemd (systemd-analyze checks the units), postgresql (the collector's tests start a
# throwaway cluster; the Debian service itself is not needed), chromium, nodejs and npm (the
# browser tests drive Debian's headless chromium with playwright-core; no browser is downloaded).
NEEDED_PACKAGES=(mosquitto mosquitto-clients systemd postgresql chromium)
command -v node >/dev/null || NEEDED_PACKAGES+=(nodejs)
command -v npm >/dev/null || NEEDED_PACKAGES+=(npm)
missing=()
for pkg in "${NEEDED_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # A freshly booted Debian or Pi often holds the dpkg lock (unattended upgrades): wait for it
  # rather than give up. Only what the tests need, no recommends (chromium alone pulls ~130).
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
fi
# The tests start their own Mosquitto and PostgreSQL on free ports. Debian starts and enables
# the packages' system services on install; stop and disable them, so that nothing is left
# listening on 1883 or 5432 (the README's first command needs 1883) or starting at boot.
for svc in mosquitto postgresql; do
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

# The protocol crate must stay no_std + alloc (device firmware uses it): build it for a
# bare-metal target when one can be installed; otherwise check the attribute and that none of
# its dependencies turns on std.
NOSTD_TARGET=thumbv7em-none-eabihf
if rustup target list --installed 2>/dev/null | grep -qx "$NOSTD_TARGET" \
   || timeout 300 rustup target add "$NOSTD_TARGET" >/dev/null 2>&1; then
  cargo build -q --locked -p orderd-protocol --target "$NOSTD_TARGET"
  echo "no_std: orderd-protocol builds for $NOSTD_TARGET"
else
  echo "no_std: $NOSTD_TARGET cannot be installed here; checking the crate instead"
  grep -q '^#!\[no_std\]' protocol/src/lib.rs
  if cargo tree -q --locked -p orderd-protocol -e normal,features --prefix none | grep -q 'feature "std"'; then
    echo "no_std: a dependency of orderd-protocol enables std" >&2
    exit 1
  fi
fi

# A test build is built once here: no incremental cache (it would take most of a GiB more
# disk). Set CARGO_INCREMENTAL=1 to keep it between runs on a workstation.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The free space the tests start with, for reading a failed run's output.
df -h . "${TMPDIR:-/tmp}" | sed 's/^/disk: /'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings
cargo build --locked -q -p orderd -p orderd-collector
# The systemd unit: verified cleanly, and an exposure score of at most 2.0 (threshold is ×10).
unit_dir=$(mktemp -d)
sed "s#/usr/bin/orderd#$PWD/target/debug/orderd#g" systemd/orderd.service > "$unit_dir/orderd.service"
systemd-analyze verify "$unit_dir/orderd.service"
systemd-analyze security --offline=true --threshold=20 "$unit_dir/orderd.service" | tail -n 1
sed "s#/usr/bin/orderd-collector#$PWD/target/debug/orderd-collector#g" systemd/orderd-collector.service > "$unit_dir/orderd-collector.service"
systemd-analyze verify "$unit_dir/orderd-collector.service"
systemd-analyze security --offline=true --threshold=20 "$unit_dir/orderd-collector.service" | tail -n 1
rm -rf "$unit_dir"
echo "systemd: orderd.service and orderd-collector.service verified"

# The pages in a real browser: the debug binary built above, Debian's chromium, screenshots of
# every page (phone and tablet) in target/browser-artifacts.
(
  cd tests/browser
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  ORDERD_BIN="$PWD/../../target/debug/orderd" CHROMIUM=/usr/bin/chromium npm test
)

# The README's collector section, step by step, against a throwaway PostgreSQL (no systemd).
scripts/readme-collector.sh

# schemathesis (PyPI, 4.x) over docs/openapi.json against the test build: every check, without
# and with a staff token, 90 s each (scripts/schemathesis.sh). Installed for this user if
# missing; no browser or service involved.
if ! python3 -m schemathesis.cli --version 2>/dev/null | grep -q 'version 4\.'; then
  python3 -m pip install -q --disable-pip-version-check "schemathesis>=4,<5"
fi
ORDERD_BIN="$PWD/target/debug/orderd" scripts/schemathesis.sh

# The full-disk tests mount a small tmpfs, which needs root (as the package installs above do);
# plain `cargo test` lists them as ignored.
cargo test -p orderd --locked -q --test it -- --ignored disk_full::

# Last, so its summary closes the output.
cargo test --workspace --locked

