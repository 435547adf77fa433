// swift-tools-version:6.0
// The async-http-client peer for `sprout-bench http-client`: keep-alive GETs from N
// concurrent tasks for a number of seconds, then the rate. A package of its own so that
// Sprout itself does not depend on async-http-client (and SwiftNIO).
import PackageDescription

let package = Package(
    name: "ahc-client",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .executableTarget(
            name: "ahc-client",
            dependencies: [.product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
