// swift-tools-version:5.9
// The FedMR SDK for iOS: the uniffi-generated Swift API (Sources/Fedmr, from
// bindings/generate.sh) over the Rust core shipped as an XCFramework
// (scripts/build-xcframework.sh, run on macOS with Xcode).
import PackageDescription

let package = Package(
    name: "Fedmr",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Fedmr", targets: ["Fedmr"]),
    ],
    targets: [
        .binaryTarget(name: "FedmrFFI", path: "build/FedmrFFI.xcframework"),
        .target(name: "Fedmr", dependencies: ["FedmrFFI"], path: "Sources/Fedmr"),
        .testTarget(name: "FedmrTests", dependencies: ["Fedmr"], path: "Tests/FedmrTests"),
    ]
)
