// swift-tools-version:6.0
// Differential harness: Sprout's HTTP/1.1 request parser against swift-nio's NIOHTTP1 (llhttp).
// Build: swift build -c release --package-path Fuzz/Differential --scratch-path .build-diff
import PackageDescription

let package = Package(
    name: "SproutDifferential",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Symlinks to ../../../Sources/SproutHTTP/Parser/*.swift (the parser depends on the stdlib only).
        .target(name: "SproutParser", path: "Sources/SproutParser"),
        .executableTarget(
            name: "differential",
            dependencies: [
                "SproutParser",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)
