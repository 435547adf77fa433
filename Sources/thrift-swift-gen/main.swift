// thrift-swift-gen THRIFT INPUT.thrift OUTPUT_DIR
//
// Runs Apache Thrift's compiler (`THRIFT --gen swift`) on INPUT into OUTPUT_DIR, then repairs
// the one defect of its 0.17 Swift generator that changes behaviour: the generated Processor
// reads a oneway call's arguments and never calls the handler. Each such handler gets the call
// the generator leaves out (the same form it writes for two-way methods). Everything else is
// the compiler's output unchanged. The ThriftGenerator plugin runs this at build time.
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: thrift-swift-gen THRIFT INPUT.thrift OUTPUT_DIR\n".utf8))
    exit(64)
}
let (compiler, input, output) = (arguments[1], arguments[2], arguments[3])
try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)

let thrift = Process()
thrift.executableURL = URL(fileURLWithPath: compiler)
thrift.arguments = ["--gen", "swift", "-out", output, input]
try thrift.run()
thrift.waitUntilExit()
guard thrift.terminationStatus == 0 else {
    FileHandle.standardError.write(Data("thrift-swift-gen: \(compiler) failed on \(input)\n".utf8))
    exit(1)
}

let stem = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
let extensionsPath = output + "/" + stem + "+Exts.swift"
let source = try String(contentsOfFile: extensionsPath, encoding: .utf8)
let repaired = repairOnewayHandlers(source)
guard repaired.unrepaired.isEmpty else {
    // The generator's output changed shape: building on would silently drop oneway calls.
    FileHandle.standardError.write(Data("thrift-swift-gen: cannot add the handler call to \(repaired.unrepaired.joined(separator: ", ")) in \(extensionsPath)\n".utf8))
    exit(1)
}
try repaired.source.write(toFile: extensionsPath, atomically: true, encoding: .utf8)

/// Adds the handler call to every processor entry that reads its arguments and calls nothing;
/// also the entries it could not repair.
func repairOnewayHandlers(_ source: String) -> (source: String, unrepaired: [String]) {
    var unrepaired: [String] = []
    let lines = source.components(separatedBy: "\n")
    let fields = argumentFields(lines)
    var repaired: [String] = []
    var index = 0
    while index < lines.count {
        let line = lines[index]
        repaired.append(line)
        index += 1
        guard let method = handlerEntryMethod(line) else { continue }
        // The entry's body runs until its closing line, `    }`.
        var body: [String] = []
        while index < lines.count && lines[index] != "    }" {
            body.append(lines[index])
            index += 1
        }
        let argsClass = body.lazy.compactMap(argumentsClass).first
        if !body.contains(where: { $0.contains("handler.") }) {
            if let argsClass, let names = fields[argsClass],
               let end = body.firstIndex(where: { $0.contains("try inProtocol.readMessageEnd()") }) {
                let call = "      try handler.\(method)(" + names.map { "\($0): args.\($0)" }.joined(separator: ", ") + ")"
                body.insert(call, at: end + 1)
            } else {
                unrepaired.append(method)
            }
        }
        repaired.append(contentsOf: body)
    }
    return (repaired.joined(separator: "\n"), unrepaired)
}

/// `processorHandlers["name"] = { … handler in` → name.
func handlerEntryMethod(_ line: String) -> String? {
    guard line.hasPrefix("    processorHandlers[\""), line.hasSuffix("handler in"),
          let close = line.range(of: "\"]") else { return nil }
    return String(line[line.index(line.startIndex, offsetBy: "    processorHandlers[\"".count)..<close.lowerBound])
}

/// `let args = try Service_method_args.read(from: inProtocol)` → Service_method_args.
func argumentsClass(_ line: String) -> String? {
    guard let start = line.range(of: "let args = try "), let end = line.range(of: ".read(from:") else { return nil }
    return String(line[start.upperBound..<end.lowerBound])
}

/// The stored properties of every `fileprivate final class X_args`, in declaration order.
func argumentFields(_ lines: [String]) -> [String: [String]] {
    var fields: [String: [String]] = [:]
    var current: String?
    for line in lines {
        if line.hasPrefix("fileprivate final class "), line.hasSuffix("_args {") {
            current = String(line.dropFirst("fileprivate final class ".count).dropLast(" {".count))
            fields[current!] = []
        } else if let name = current {
            if line.hasPrefix("  fileprivate var "), let colon = line.firstIndex(of: ":") {
                fields[name]!.append(String(line[line.index(line.startIndex, offsetBy: "  fileprivate var ".count)..<colon]))
            } else if line == "}" {
                current = nil
            }
        }
    }
    return fields
}
