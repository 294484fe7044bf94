#!/usr/bin/env bash
# Builds the FFI library for this machine and generates the Kotlin, Swift and
# Python sources from it into their packages (generated files are not
# committed; they always match the library they were generated from).
#
#   bindings/generate.sh            # debug build (what CI tests)
#   bindings/generate.sh --release  # release build
#
# FEDMR_BUILD_FLAGS adds cargo flags to the build: scripts/test-bindings
# passes the test run's feature set, so no dependency is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
cargo_flags=()
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    cargo_flags=(--release)
fi

# shellcheck disable=SC2086 # FEDMR_BUILD_FLAGS is a list of flags
cargo build "${cargo_flags[@]}" -p fedmr-ffi -p uniffi-bindgen ${FEDMR_BUILD_FLAGS:-}
target="${CARGO_TARGET_DIR:-target}"
lib="$target/$profile/libfedmr_ffi.so"
bindgen="$target/$profile/uniffi-bindgen"

# Python: the module and the library side by side in the package.
"$bindgen" generate --library "$lib" --language python --out-dir bindings/python/src/fedmr
cp "$lib" bindings/python/src/fedmr/
strip --strip-debug bindings/python/src/fedmr/libfedmr_ffi.so

# Kotlin: into the Android library module's sources; the JVM tests load the
# host library from bindings/kotlin/build/native.
"$bindgen" generate --library "$lib" --language kotlin --out-dir bindings/kotlin/src/main/kotlin
mkdir -p bindings/kotlin/build/native
cp "$lib" bindings/kotlin/build/native/
strip --strip-debug bindings/kotlin/build/native/libfedmr_ffi.so

# Swift: sources, header and module map for the Swift package.
"$bindgen" generate --library "$lib" --language swift --out-dir bindings/swift/Sources/FedmrFFI
mkdir -p bindings/swift/Sources/Fedmr
mv bindings/swift/Sources/FedmrFFI/fedmr_ffi.swift bindings/swift/Sources/Fedmr/

echo "generated bindings from $lib"
