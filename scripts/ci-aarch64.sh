#!/usr/bin/env bash
# Cross-compiles the kernel and core tests for aarch64 and runs them under qemu-user (preset
# `aarch64`), so both NEON variants (neon, neondot) are checked bit-exactly against the scalar
# reference on an x86 CI machine. Builds only the test targets. Debian/Ubuntu; run as root or with
# sudo available. BITNET_CI_JOBS sets build parallelism (default 2).
set -euo pipefail

cd "$(dirname "$0")/.."

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

# command -> Debian package that provides it; googletest is checked by its source directory.
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
[[ -f /usr/src/googletest/CMakeLists.txt ]] || missing+=(googletest)
if ((${#missing[@]})); then
  echo "ci-aarch64: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake --preset aarch64
cmake --build --preset aarch64 --target test-kernels test-core --parallel "${BITNET_CI_JOBS:-2}"

# Both NEON variants must be exercised. ctest -N lists the tests gtest discovers under the
# toolchain's emulator; neondot appears only if qemu's CPU reports dotprod.
listed=$(ctest --preset aarch64 -N)
for isa in neon_t1 neon_t2 neondot_t1 neondot_t2; do
  if ! grep -q "/${isa}\b" <<<"$listed"; then
    echo "ci-aarch64: no ${isa} tests; does the emulator's CPU lack the extension?" >&2
    exit 1
  fi
done

ctest --preset aarch64
