# Sourced by the JVM test scripts: finds kotlinc (KOTLINC, then PATH, then
# what scripts/install-test-tools put in $FEDMR_TOOLS), JNA, the Kotlin
# standard library and kotlinx-coroutines (which ships with kotlinc), and
# makes sure the generated bindings and the host library exist.
#   sets: kotlinc, jna, kotlin_lib, root
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${FEDMR_TOOLS:-$HOME/.cache/fedmr-tools}"
kotlinc="${KOTLINC:-$(command -v kotlinc || echo "$tools/node_modules/kotlin-compiler/bin/kotlinc")}"
if [[ ! -x "$kotlinc" ]]; then
    echo "kotlinc not found (KOTLINC, PATH, $tools): run scripts/install-test-tools" >&2
    exit 1
fi
jna="${JNA_JAR:-/usr/share/java/jna.jar}"
if [[ ! -f "$jna" ]]; then
    echo "JNA not found at $jna: run scripts/install-test-tools" >&2
    exit 1
fi
kotlin_lib="$(dirname "$(readlink -f "$kotlinc")")/../lib"
# Generated sources and the host library: built here if a checkout has
# none yet (scripts/test-bindings generates them first).
if [[ ! -f "$root/bindings/kotlin/src/main/kotlin/uniffi/fedmr_ffi/fedmr_ffi.kt" \
    || ! -f "$root/bindings/kotlin/build/native/libfedmr_ffi.so" ]]; then
    echo "== bindings/generate.sh (no generated Kotlin or host library yet)"
    "$root/bindings/generate.sh" >/dev/null
fi
