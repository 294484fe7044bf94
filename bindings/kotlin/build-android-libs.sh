#!/usr/bin/env bash
# The Android inputs of the AAR: the generated Kotlin and libfedmr_ffi.so
# for arm64-v8a, armeabi-v7a, x86_64 and x86 in src/main/jniLibs/<abi>/
# (the layout the Android Gradle plugin packs). Needs the Android NDK
# (ANDROID_NDK_HOME) and cargo-ndk; not available on the project's CI
# machine, so this script is not run there.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-ndk >/dev/null || { echo "cargo install cargo-ndk" >&2; exit 1; }
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android
bindings/generate.sh --release
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 \
    -o bindings/kotlin/src/main/jniLibs build --release -p fedmr-ffi
