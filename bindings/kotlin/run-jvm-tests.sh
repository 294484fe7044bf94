#!/usr/bin/env bash
# Compiles the generated Kotlin bindings, the SDK's Kotlin layer
# (org.fedmr.sdk) and the JVM test suite with kotlinc and runs it against
# the host library. Works straight after scripts/install-test-tools: finds
# kotlinc there and generates the bindings if they are missing.
#   KOTLINC   kotlinc to use (default: PATH, then scripts/install-test-tools')
#   JNA_JAR   JNA (default: Debian's /usr/share/java/jna.jar)
set -euo pipefail
cd "$(dirname "$0")"
source ../../scripts/lib/kotlin-env.sh
classpath="$jna:$kotlin_lib/kotlinx-coroutines-core-jvm.jar"
rm -rf build/classes && mkdir -p build/classes
"$kotlinc" -nowarn -cp "$classpath" -d build/classes \
    src/main/kotlin/uniffi/fedmr_ffi/fedmr_ffi.kt src/main/kotlin/org/fedmr/sdk/*.kt src/testFixtures/kotlin/*.kt src/test/kotlin/*.kt
java -Djna.library.path="$PWD/build/native" -cp "build/classes:$classpath:$kotlin_lib/kotlin-stdlib.jar" \
    FedmrClientTestKt
