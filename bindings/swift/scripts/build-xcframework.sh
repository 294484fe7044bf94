#!/usr/bin/env bash
# macOS with Xcode only (not runnable on the Linux CI): builds the core for
# iOS devices, the iOS simulator and macOS, and packs the static libraries
# with the generated header and module map into build/FedmrFFI.xcframework.
set -euo pipefail
cd "$(dirname "$0")/../../.."
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin)
for t in "${targets[@]}"; do
    rustup target add "$t"
    cargo build --release -p fedmr-ffi --target "$t"
done
bindings/generate.sh --release
headers=bindings/swift/build/headers
rm -rf "$headers" bindings/swift/build/FedmrFFI.xcframework
mkdir -p "$headers"
cp bindings/swift/Sources/FedmrFFI/fedmr_ffiFFI.h "$headers/"
cp bindings/swift/Sources/FedmrFFI/fedmr_ffiFFI.modulemap "$headers/module.modulemap"
mkdir -p target/ios-sim-universal
lipo -create target/aarch64-apple-ios-sim/release/libfedmr_ffi.a \
    target/x86_64-apple-ios/release/libfedmr_ffi.a -output target/ios-sim-universal/libfedmr_ffi.a
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libfedmr_ffi.a -headers "$headers" \
    -library target/ios-sim-universal/libfedmr_ffi.a -headers "$headers" \
    -library target/aarch64-apple-darwin/release/libfedmr_ffi.a -headers "$headers" \
    -output bindings/swift/build/FedmrFFI.xcframework
echo "then: cd bindings/swift && swift test"
