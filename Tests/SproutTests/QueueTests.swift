import Sprout
import Testing

@Suite(.timeLimit(.minutes(3)))
struct QueueTests {
    @Test func fifoLifoAndPriorityOrder() async throws {
        try await green { () throws in
            let fifo = Queue<Int>()
            let lifo = LifoQueue<Int>()
            let priority = PriorityQueue<Int>()
            for value in [3, 1, 2] {
                try fifo.put(value)
                try lifo.put(value)
                try priority.put(value)
            }
            #expect(fifo.peek() == 3 && priority.peek() == 1 && lifo.peek() == 2)
            #expect(try (0..<3).map { _ in try fifo.get() } == [3, 1, 2])
            #expect(fifo.peek() == nil)
            #expect(try (0..<3).map { _ in try lifo.get() } == [2, 1, 3])
            #expect(try (0..<3).map { _ in try priority.get() } == [1, 2, 3])
        }
    }

    @Test func boundedQueueBlocksPuttersAndServesThemFIFO() async throws {
        try await green { () throws in
            let queue = Queue<Int>(maxSize: 2)
            try queue.put(0)
            try queue.put(1)
            #expect(queue.isFull)
            #expect(throws: QueueError.full) { try queue.tryPut(9) }
            #expect(throws: QueueError.full) { try queue.put(9, timeout: .milliseconds(2)) }
            let putters = (2..<50).map { value in spawn { try queue.put(value) } }
            var received: [Int] = []
            for _ in 0..<50 { received.append(try queue.get()) }
            try joinAll(putters)
            #expect(received == Array(0..<50))
            #expect(throws: QueueError.empty) { try queue.tryGet() }
            #expect(throws: QueueError.empty) { try queue.get(timeout: .milliseconds(2)) }
        }
    }

    @Test func gettersAreServedFIFO() async throws {
        try await green { () throws in
            let queue = Queue<Int>()
            var got: [(getter: Int, item: Int)] = []
            let getters = spawnMany(100) { index in got.append((index, try queue.get())) }
            try sleep(for: .zero)
            for item in 0..<100 { try queue.put(item) }
            try joinAll(getters)
            #expect(got.map(\.getter) == Array(0..<100))
            #expect(got.map(\.item) == Array(0..<100))
        }
    }

    @Test func tenThousandGreenletsPassATokenThroughQueues() async throws {
        // 6 s in a debug build; under a sanitizer, with every other suite starting beside it
        // on CI's 2 cores, it once took past 30 s.
        try await green(timeout: .seconds(150)) { () throws in
            let count = 10_000
            let rounds = 3
            let queues = (0...count).map { _ in Queue<Int>(maxSize: 1) }
            let relays = spawnMany(count) { index in
                for _ in 0..<rounds {
                    let token = try queues[index].get()
                    try queues[index + 1].put(token + 1)
                }
            }
            var token = 0
            for _ in 0..<rounds {
                try queues[0].put(token)
                token = try queues[count].get()
            }
            try joinAll(relays)
            #expect(token == count * rounds)
        }
    }

    @Test func tenThousandGreenletsPassATokenThroughChannels() async throws {
        // 6 s in a debug build; under a sanitizer, with every other suite starting beside it
        // on CI's 2 cores, it once took past 30 s.
        try await green(timeout: .seconds(150)) { () throws in
            let count = 10_000
            let channels = (0...count).map { _ in Channel<Int>() }
            let relays = spawnMany(count) { index in
                for _ in 0..<2 {
                    try channels[index + 1].put(try channels[index].get() + 1)
                }
            }
            var token = 0
            for _ in 0..<2 {
                let feeder = spawn { try channels[0].put(token) }
                token = try channels[count].get()
                try feeder.join()
            }
            try joinAll(relays)
            #expect(token == 2 * count)
        }
    }

    @Test func channelIsARendezvous() async throws {
        try await green { () throws in
            let channel = Channel<String>()
            var delivered = false
            let putter = spawn {
                try channel.put("x")
                delivered = true
            }
            try sleep(for: .milliseconds(2))
            #expect(!delivered, "put waits for a getter")
            #expect(channel.balance == 1)
            #expect(try channel.get() == "x")
            try putter.join()
            #expect(delivered)
            #expect(throws: QueueError.full) { try channel.tryPut("y") }
            #expect(throws: QueueError.empty) { try channel.tryGet() }
            #expect(channel.count == 0)
        }
    }

    @Test func joinableQueueWaitsForTaskDone() async throws {
        try await green { () throws in
            let queue = JoinableQueue<Int>()
            var processed = 0
            let workers = spawnMany(4) { _ in
                while true {
                    let item = try queue.get()
                    try sleep(for: .milliseconds(item % 3))
                    processed += 1
                    try queue.taskDone()
                }
            }
            for item in 0..<40 { try queue.put(item) }
            #expect(try queue.join(timeout: .seconds(10)))
            #expect(processed == 40)
            #expect(throws: QueueError.tooManyTaskDone) { try queue.taskDone() }
            killAll(workers)
        }
    }
}
