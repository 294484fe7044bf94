#!/usr/bin/env bash
# Compiles the demo's logic layer with the generated bindings and runs its
# JVM tests against the host library and the host fedmr-server binary
# (bindings/generate.sh and `cargo build -p fedmr-server` first).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
kotlinc="${KOTLINC:-kotlinc}"
jna="${JNA_JAR:-/usr/share/java/jna.jar}"
stdlib="$(dirname "$(readlink -f "$(command -v "$kotlinc")")")/../lib/kotlin-stdlib.jar"
server="${FEDMR_SERVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/fedmr-server}"
mkdir -p build/classes
"$kotlinc" -nowarn -cp "$jna" -d build/classes \
    "$root/bindings/kotlin/src/main/kotlin/uniffi/fedmr_ffi/fedmr_ffi.kt" \
    src/main/kotlin/org/fedmr/demo/*.kt src/test/kotlin/LogicTest.kt
java -Djna.library.path="$root/bindings/kotlin/build/native" -cp "build/classes:$jna:$stdlib" LogicTestKt "$server"
