#!/usr/bin/env bash
# Compiles the generated Kotlin bindings and the JVM test suite with kotlinc
# and runs it against the host library (bindings/generate.sh first).
#   KOTLINC   kotlinc to use (default: kotlinc on PATH)
#   JNA_JAR   JNA (default: Debian's /usr/share/java/jna.jar)
set -euo pipefail
cd "$(dirname "$0")"
kotlinc="${KOTLINC:-kotlinc}"
jna="${JNA_JAR:-/usr/share/java/jna.jar}"
stdlib="$(dirname "$(readlink -f "$(command -v "$kotlinc")")")/../lib/kotlin-stdlib.jar"
mkdir -p build/classes
"$kotlinc" -nowarn -cp "$jna" -d build/classes \
    src/main/kotlin/uniffi/fedmr_ffi/fedmr_ffi.kt src/test/kotlin/FedmrClientTest.kt
java -Djna.library.path="$PWD/build/native" -cp "build/classes:$jna:$stdlib" FedmrClientTestKt
