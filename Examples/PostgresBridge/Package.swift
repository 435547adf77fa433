// swift-tools-version:6.1
// A Sprout HTTP server whose handlers query PostgreSQL through postgres-nio, reached from
// plain blocking handler code with SproutAsync's awaitAsync, both run in one ServiceGroup.
// A package of its own so that postgres-nio (and SwiftNIO under it) never enters the
// library's dependencies or its test build; scripts/test runs its tests.
import PackageDescription

let package = Package(
    name: "PostgresBridge",
    dependencies: [
        .package(name: "Sprout", path: "../.."),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "PostgresBridgeApp",
            dependencies: [
                .product(name: "Sprout", package: "Sprout"),
                .product(name: "SproutHTTP", package: "Sprout"),
                .product(name: "SproutAsync", package: "Sprout"),
                .product(name: "SproutLifecycle", package: "Sprout"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "postgres-bridge",
            dependencies: [
                "PostgresBridgeApp",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "PostgresBridgeTests",
            dependencies: [
                "PostgresBridgeApp",
                .product(name: "Sprout", package: "Sprout"),
                .product(name: "SproutHTTP", package: "Sprout"),
                .product(name: "SproutLifecycle", package: "Sprout"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
