import ArgumentParser

/// `feed-service`: the seed scenario's API service and its slow backend.
///
/// `feed-service serve` answers `GET /feed/<user>` by fetching the user's record and its pin
/// records from the backend and returning them as one JSON document; `feed-service backend`
/// is that backend, a Sprout server whose every call takes a configurable time.
@main
struct FeedServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed-service",
        abstract: "The seed scenario: an API service that fans out to a slow backend, and the backend.",
        subcommands: [ServeFeed.self, RunBackend.self]
    )
}
