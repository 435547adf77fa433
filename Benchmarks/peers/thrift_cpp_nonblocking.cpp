/*
 * thrift_cpp_nonblocking: the C++ floor peer for the Thrift follow benchmark.
 *
 *   thrift_cpp_nonblocking PORT
 *
 * Apache Thrift 0.17 TNonblockingServer (libevent) on 127.0.0.1:PORT, binary protocol over
 * framed transport (TNonblockingServer always frames), serving Examples/follow.thrift.
 * One IO thread and no worker ThreadManager, so every handler call runs inline on the IO
 * thread: the cheapest Thrift C++ setup on one core. State is in memory, unlocked (single
 * thread). Prints "listening PORT" once the socket is bound and the loop is about to run.
 * Built by build-thrift-cpp-peer, which generates FollowService.{h,cpp} at build time.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>

#include "FollowService.h"

using namespace apache::thrift;

// In-memory follow graph: follower lists in first-follow order, plus an edge set for
// O(1) isFollowing and idempotent follow.
class FollowHandler : public FollowServiceIf {
  struct EdgeHash {
    size_t operator()(const std::pair<int64_t, int64_t>& e) const {
      return std::hash<int64_t>()(e.first) * 1000003u ^ std::hash<int64_t>()(e.second);
    }
  };
  std::unordered_set<std::pair<int64_t, int64_t>, EdgeHash> edges_;
  std::unordered_map<int64_t, std::vector<int64_t>> followers_;  // followee -> followers
  std::unordered_set<int64_t> users_;                           // any user on any edge

public:
  void follow(const int64_t follower, const int64_t followee) override {
    if (!edges_.insert({follower, followee}).second) return;  // already recorded
    followers_[followee].push_back(follower);
    users_.insert(follower);
    users_.insert(followee);
  }

  void followers(std::vector<int64_t>& out, const int64_t user, const int32_t limit) override {
    if (!users_.count(user)) {
      NotFound nf;
      nf.message = "user " + std::to_string(user) + " has no follow edges";
      throw nf;
    }
    if (limit < 1) return;
    auto it = followers_.find(user);
    if (it == followers_.end()) return;
    size_t n = std::min(it->second.size(), static_cast<size_t>(limit));
    out.assign(it->second.begin(), it->second.begin() + n);
  }

  bool isFollowing(const int64_t a, const int64_t b) override { return edges_.count({a, b}) != 0; }

  // Blocks the only IO thread, as a handler on this server setup would.
  void sleep(const int32_t ms) override {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }

  void ping() override {}
};

// Announces readiness once serve() has bound the socket and registered its events.
class ReadyAnnouncer : public server::TServerEventHandler {
  server::TNonblockingServer* server_;

public:
  explicit ReadyAnnouncer(server::TNonblockingServer* s) : server_(s) {}
  void preServe() override {
    std::printf("listening %d\n", server_->getListenPort());
    std::fflush(stdout);
  }
};

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  auto processor = std::make_shared<FollowServiceProcessor>(std::make_shared<FollowHandler>());
  auto protocol = std::make_shared<protocol::TBinaryProtocolFactory>();
  auto socket = std::make_shared<transport::TNonblockingServerSocket>("127.0.0.1", port);
  server::TNonblockingServer server(processor, protocol, socket);  // no ThreadManager
  server.setNumIOThreads(1);
  server.setServerEventHandler(std::make_shared<ReadyAnnouncer>(&server));
  server.serve();
  return 0;
}
