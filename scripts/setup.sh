#!/usr/bin/env bash
# One-time (and idempotent) set-up of a Debian 12 machine for xenlab, as root:
# Debian packages (QEMU 10 from bookworm-backports, on the machine's own configured mirror),
# a virtual environment with xenlab installed, and the embedded guest's kernel.
# Prints one line per step with its elapsed time.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s%N)
step() {
  local ms=$(( ($(date +%s%N) - START) / 1000000 ))
  printf '[setup %4d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
die() { echo "setup: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and builds network namespaces)"
. /etc/os-release 2>/dev/null || true
[ "${VERSION_CODENAME:-}" = bookworm ] || echo "setup: warning: made for Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}" >&2

PACKAGES=(vblade lvm2 iproute2 nftables iputils-ping busybox-static e2fsprogs util-linux dropbear-bin
          kmod procps libpcap0.8 openssh-client python3-venv python3-pip gcc libc6-dev
          debootstrap  # the embedded Xen lab's dom0 root filesystem
          chromium  # the report's self-test renders it headless; the certificate is printed by it
          fonts-dejavu-core  # the certificate's and plots' fonts
          poppler-utils)  # pdftotext and pdfinfo: the certificate's self-test reads the PDF
BACKPORTS_PACKAGES=(qemu-system-x86)
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
qemu_ok() {
  local v; v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null) || return 1
  dpkg --compare-versions "$v" ge "1:9.0"
}

# bookworm-backports on the mirror this machine already uses (never a host written here)
backports_configured() { grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; }
if ! qemu_ok && ! backports_configured; then
  mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '$3=="bookworm"{print $2}' | head -n1)
  [ -n "$mirror" ] || die "no Debian mirror for bookworm found in /etc/apt/sources.list*; add bookworm-backports by hand"
  cat > /etc/apt/sources.list.d/xenlab-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  step "added bookworm-backports from the configured mirror"
  missing+=(apt-update)
fi

if [ ${#missing[@]} -gt 0 ] || ! qemu_ok; then
  step "apt-get update ..."
  apt-get update -qq
  step "installing Debian packages: ${missing[*]/apt-update/} ..."
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  if ! qemu_ok; then
    step "installing QEMU from bookworm-backports (Debian 12's QEMU 7.2 corrupts guest memory in TCG migrations) ..."
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS_PACKAGES[@]}" >/dev/null
  fi
  step "Debian packages installed"
else
  step "Debian packages present (QEMU $(dpkg-query -W -f='${Version}' qemu-system-x86))"
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is older than 3.11"
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv ..."
  "$PY" -m venv .venv
fi
stamp=.venv/.xenlab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "installing xenlab and its Python dependencies into .venv ..."
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
step "Python environment ready ($(.venv/bin/python --version))"

step "guest kernel and initramfs; the embedded Xen lab's host kit (Xen 4.17, dom0; ~2 min once) ..."
.venv/bin/xenlab lab kit --xen
step "set-up complete"
