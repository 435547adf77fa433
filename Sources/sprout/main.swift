import ArgumentParser
import Sprout

@main
struct SproutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sprout",
        abstract: "Sprout: gevent's model in Swift — green threads on an epoll hub per thread.",
        subcommands: [Version.self]
    )

    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print Sprout's version.")
        func run() {
            print("sprout \(Sprout.version)")
        }
    }
}
