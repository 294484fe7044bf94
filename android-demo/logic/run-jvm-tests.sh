#!/usr/bin/env bash
# Compiles the demo's logic layer with the generated bindings and runs its
# JVM tests against the host library and the host fedmr-server binary.
# Works straight after scripts/install-test-tools: finds kotlinc there,
# generates the bindings and builds the debug fedmr-server if missing.
#   FEDMR_SERVER_BIN  the server binary (default: target/debug/fedmr-server)
set -euo pipefail
cd "$(dirname "$0")"
source ../../scripts/lib/kotlin-env.sh
server="${FEDMR_SERVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/fedmr-server}"
if [[ ! -x "$server" ]]; then
    echo "== cargo build -p fedmr-server (for the background-job tests)"
    (cd "$root" && cargo build --quiet -p fedmr-server)
fi
classpath="$jna:$kotlin_lib/kotlinx-coroutines-core-jvm.jar"
sdk="$root/bindings/kotlin/src"
rm -rf build/classes && mkdir -p build/classes
"$kotlinc" -nowarn -cp "$classpath" -d build/classes \
    "$sdk/main/kotlin/uniffi/fedmr_ffi/fedmr_ffi.kt" "$sdk"/main/kotlin/org/fedmr/sdk/*.kt \
    "$sdk"/testFixtures/kotlin/*.kt src/main/kotlin/org/fedmr/demo/*.kt src/test/kotlin/LogicTest.kt
java -Djna.library.path="$root/bindings/kotlin/build/native" \
    -cp "build/classes:$classpath:$kotlin_lib/kotlin-stdlib.jar" LogicTestKt "$server"
