namespace swift Follow
namespace py follow
exception NotFound { 1: string message }
service FollowService {
  void follow(1: i64 follower, 2: i64 followee),
  list<i64> followers(1: i64 user, 2: i32 limit) throws (1: NotFound nf),
  bool isFollowing(1: i64 a, 2: i64 b),
  void sleep(1: i32 ms),
  oneway void ping()
}
