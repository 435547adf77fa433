import Sprout
import Thrift

/// The follow service of `Examples/follow.thrift`, from memory: what `sprout follow` serves.
///
/// - `follow` records an edge (idempotent).
/// - `followers` returns the followers of `user` in the order they first followed, at most
///   `limit` (none for a limit below one), and throws `NotFound` naming the user when the user
///   has no edge at all, as follower or followee.
/// - `isFollowing` says whether `a` follows `b`.
/// - `sleep` parks the calling greenlet `ms` milliseconds (the hub serves other calls meanwhile).
/// - `ping` does nothing.
///
/// One instance belongs to one hub's greenlets (no locks: they never run at once).
public final class InMemoryFollowService: FollowService {
    private struct Edge: Hashable {
        let follower: Int64
        let followee: Int64
    }

    private var edges = Set<Edge>()
    private var followersInOrder: [Int64: [Int64]] = [:]
    private var usersWithEdges = Set<Int64>()

    /// An empty graph.
    public init() {}

    public func follow(follower: Int64, followee: Int64) throws {
        guard edges.insert(Edge(follower: follower, followee: followee)).inserted else { return }
        followersInOrder[followee, default: []].append(follower)
        usersWithEdges.insert(follower)
        usersWithEdges.insert(followee)
    }

    public func followers(user: Int64, limit: Int32) throws -> TList<Int64> {
        guard usersWithEdges.contains(user) else {
            throw NotFound(message: "user \(user) has no follow edges")
        }
        let all = followersInOrder[user] ?? []
        return TList(all.prefix(max(0, Int(limit))))
    }

    public func isFollowing(a: Int64, b: Int64) throws -> Bool {
        edges.contains(Edge(follower: a, followee: b))
    }

    public func sleep(ms: Int32) throws {
        if ms > 0 { try Sprout.sleep(for: .milliseconds(Int(ms))) }
    }

    public func ping() throws {}
}
