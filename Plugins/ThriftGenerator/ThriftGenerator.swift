import Foundation
import PackagePlugin

/// Compiles every `.thrift` file in a target's folder with Debian's `thrift` compiler
/// (`thrift --gen swift`, package thrift-compiler) into the target's sources at build time,
/// through `thrift-swift-gen` (which also gives oneway methods the handler call the 0.17
/// generator leaves out).
///
/// The generated code says `import Thrift` (Sprout's module of that name) and is Swift 3-era
/// code: the target that holds the `.thrift` files builds in Swift 5 language mode.
@main
struct ThriftGenerator: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let folder = target.directoryURL
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".thrift") }
            .sorted()
        guard !files.isEmpty else { return [] }
        let compiler = try findCompiler()
        let generator = try context.tool(named: "thrift-swift-gen").url
        return files.map { file in
            let input = folder.appendingPathComponent(file).resolvingSymlinksInPath()
            let stem = String(file.dropLast(".thrift".count))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent(stem)
            return .buildCommand(
                displayName: "thrift --gen swift \(file)",
                executable: generator,
                arguments: [compiler.path, input.path, output.path],
                inputFiles: [input],
                outputFiles: [
                    output.appendingPathComponent("\(stem).swift"),
                    output.appendingPathComponent("\(stem)+Exts.swift"),
                ]
            )
        }
    }

    private func findCompiler() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories: [String] = path.split(separator: ":").map { String($0) } + ["/usr/bin", "/usr/local/bin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("thrift")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw GeneratorError(description: "the thrift compiler is not installed: apt-get install thrift-compiler (Apache Thrift 0.17)")
    }
}

struct GeneratorError: Error, CustomStringConvertible {
    let description: String
}
