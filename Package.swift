// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Sprout",
    products: [
        .library(name: "Sprout", targets: ["Sprout"]),
        .library(name: "SproutHTTP", targets: ["SproutHTTP"]),
        .library(name: "SproutTLS", targets: ["SproutTLS"]),
        .library(name: "SproutAsync", targets: ["SproutAsync"]),
        .library(name: "SproutLifecycle", targets: ["SproutLifecycle"]),
        .library(name: "SproutRedis", targets: ["SproutRedis"]),
        .library(name: "SproutMemcached", targets: ["SproutMemcached"]),
        // Thrift: the runtime of `thrift --gen swift` code (which imports it as Thrift), green
        // transports, ThriftServer and pooled clients; the plugin compiles .thrift files.
        .library(name: "SproutThrift", targets: ["SproutThrift"]),
        .library(name: "Thrift", targets: ["Thrift"]),
        .plugin(name: "ThriftGenerator", targets: ["ThriftGenerator"]),
        // The same hooks for LD_PRELOAD: scripts/build-patch-preload (plain C, no Swift runtime).
        .library(name: "SproutPatch", targets: ["SproutPatch"]),
        .executable(name: "sprout", targets: ["sprout"]),
        .executable(name: "sprout-bench", targets: ["sprout-bench"]),
        .executable(name: "feed-service", targets: ["feed-service"]),
        .executable(name: "service-group-demo", targets: ["service-group-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "CSproutContext",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "CSproutSystem",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "Sprout",
            dependencies: [
                "CSproutContext",
                "CSproutSystem",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CSproutTLS",
            dependencies: ["COpenSSL"],
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "SproutTLS",
            dependencies: ["Sprout", "COpenSSL", "CSproutTLS"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .target(
            name: "SproutHTTP",
            dependencies: [
                "Sprout",
                "SproutTLS",
                "CZlib",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .target(
            name: "SproutRedis",
            dependencies: ["Sprout", "SproutTLS"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .target(
            name: "SproutMemcached",
            dependencies: ["Sprout", "SproutTLS"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .target(
            name: "SproutThrift",
            dependencies: ["Sprout", .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .target(name: "Thrift", dependencies: ["SproutThrift"]),
        // Runs Debian's thrift compiler (thrift-compiler) on a target's .thrift files at build time.
        .plugin(name: "ThriftGenerator", capability: .buildTool(), dependencies: ["thrift-swift-gen"]),
        .executableTarget(name: "thrift-swift-gen"),
        // Examples/follow.thrift compiled, and the in-memory service `sprout follow` serves.
        // Generated code is Swift 3-era: Swift 5 language mode.
        .target(
            name: "Follow",
            dependencies: ["Thrift", "Sprout"],
            path: "Examples/Follow",
            exclude: ["follow.thrift"],
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: ["ThriftGenerator"]
        ),
        // libc interposition: the hooks in C (reaching libc with dlsym(RTLD_NEXT)), patchAll()
        // in Swift. Neither depends on Sprout: the runtime offers itself to the hooks through a
        // weak symbol when it creates its first hub.
        .target(
            name: "CSproutPatch",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        .target(
            name: "SproutPatch",
            dependencies: ["CSproutPatch"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // Blocking C clients for SproutPatch's tests and benchmark (not the library's dependencies).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CLibMemcached", pkgConfig: "libmemcached", providers: [.apt(["libmemcached-dev"])]),
        .target(
            name: "SproutAsync",
            dependencies: ["Sprout", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // Sprout servers as swift-service-lifecycle services (layer 3).
        .target(
            name: "SproutLifecycle",
            dependencies: [
                "Sprout", "SproutHTTP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .executableTarget(
            name: "sprout",
            dependencies: [
                "Sprout",
                "SproutHTTP",
                "SproutTLS",
                "SproutThrift",
                "Follow",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The seed scenario's API service and its slow backend (see Examples/FeedService).
        .executableTarget(
            name: "feed-service",
            dependencies: [
                "Sprout",
                "SproutHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/FeedService",
            exclude: ["README.md"]
        ),
        // A Sprout HTTP server and an async service in one ServiceGroup (see Examples/ServiceGroupDemo).
        .executableTarget(
            name: "service-group-demo",
            dependencies: [
                "Sprout", "SproutHTTP", "SproutAsync", "SproutLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/ServiceGroupDemo",
            exclude: ["README.md"]
        ),
        .target(name: "CEchoPeer", cSettings: [.define("_GNU_SOURCE")]),
        .executableTarget(
            name: "sprout-bench",
            dependencies: [
                "Sprout",
                "SproutAsync",
                "SproutHTTP",
                "SproutTLS",
                "SproutRedis",
                "SproutMemcached",
                "SproutPatch",
                "SproutThrift",
                "Follow",
                "CLibPQ",
                "CEchoPeer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "SproutTestSupport", dependencies: ["Sprout"], path: "Tests/SproutTestSupport", exclude: ["README.md"]),
        .testTarget(
            name: "SproutTests",
            dependencies: ["Sprout", "SproutTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SproutRedisTests",
            dependencies: ["SproutRedis", "Sprout", "SproutTLS", "SproutTestSupport"]
        ),
        .testTarget(
            name: "SproutMemcachedTests",
            dependencies: ["SproutMemcached", "Sprout", "SproutTestSupport"],
            exclude: ["ketama_reference.c"]
        ),
        .testTarget(
            name: "SproutPatchTests",
            dependencies: ["SproutPatch", "Sprout", "CLibPQ", "CLibMemcached", "SproutTestSupport"]
        ),
        .testTarget(
            name: "SproutAsyncTests",
            dependencies: ["SproutAsync", "Sprout"]
        ),
        .testTarget(
            name: "SproutLifecycleTests",
            dependencies: [
                "SproutLifecycle", "service-group-demo", "Sprout", "SproutHTTP", "SproutTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FeedServiceTests",
            dependencies: [
                "feed-service", "Sprout", "SproutHTTP", "SproutTestSupport",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // Tests/ThriftIDL/alltypes.thrift compiled, and its Echo handler (Swift 5 mode, as generated code needs).
        .target(
            name: "AllTypesThrift",
            dependencies: ["Thrift"],
            path: "Tests/ThriftIDL",
            exclude: ["alltypes.thrift"],
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: ["ThriftGenerator"]
        ),
        .testTarget(
            name: "SproutThriftTests",
            dependencies: [
                "SproutThrift", "Follow", "AllTypesThrift", "Sprout", "sprout", "SproutTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Peers"]
        ),
        .testTarget(
            name: "SproutHTTPTests",
            dependencies: [
                "SproutHTTP", "Sprout", "SproutTLS", "sprout", "SproutTestSupport",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["Peers"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
