// The XCTest mirror of bindings/kotlin/src/test/kotlin/FedmrClientTest.kt:
// the whole API as an iOS app walks it. Runs on macOS after
// scripts/build-xcframework.sh (`swift test`); on Linux CI it is only
// parsed (bindings/swift/scripts/check_syntax.py), as no Swift toolchain exists there.

import Foundation
import XCTest
@testable import Fedmr

final class FedmrClientTests: XCTestCase {
    var server: SampleServerData!

    override func setUpWithError() throws {
        server = try sampleServerData(nItems: 120, seed: 3)
    }

    private func newClient() throws -> FedmrClient {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let client = try FedmrClient.open(config: ClientConfig(
            dbPath: dir.appendingPathComponent("fedmr.sqlite").path, retentionCap: 50000, seed: 5))
        XCTAssertTrue(try client.applyCatalog(bytes: server.catalog))
        XCTAssertTrue(try client.applyModel(bytes: server.model))
        return client
    }

    private func likes(_ keys: [String]) -> [Interaction] {
        keys.enumerated().map { Interaction(itemKey: $0.element, kind: .like, timestampMs: Int64($0.offset)) }
    }

    final class Recorder: TrainProgress, @unchecked Sendable {
        var epochs: [UInt32] = []
        func onEpoch(epoch: UInt32, epochs: UInt32, loss: Float) {
            XCTAssertTrue(loss.isFinite)
            self.epochs.append(epoch)
        }
    }

    func testWalkTheWholeApi() throws {
        let client = try newClient()
        let keys = Array(server.itemKeys.prefix(6))
        XCTAssertEqual(try client.recordBatch(interactions: likes(keys)), 6)
        try client.record(interaction: Interaction(itemKey: "not-in-catalog", kind: .weighted, timestampMs: 99, weight: 0.5))
        let stats = try client.stats()
        XCTAssertEqual(stats.interactions, 7)
        XCTAssertEqual(stats.unknownItems, 1)

        let recorder = Recorder()
        let report = try client.train(options: TrainOptions(timeBudgetMs: nil), progress: recorder, cancel: nil)
        XCTAssertEqual(report.epochsRun, 5)
        XCTAssertEqual(recorder.epochs, [1, 2, 3, 4, 5])
        XCTAssertEqual(try client.pendingUploads().count, 1)
        XCTAssertTrue(try client.integrityCheck())

        let top = try client.recommend(k: 10, excludeSeen: true, candidates: nil)
        XCTAssertEqual(top.count, 10)
        XCTAssertFalse(top.contains { keys.contains($0.itemKey) })
        let prefs = try client.preferences()
        XCTAssertTrue(prefs.trained)
        XCTAssertEqual(prefs.experts.map { $0.expert }, ["sum", "mlp", "gate"])

        let spent = try client.privacySpent(delta: 1e-5)
        XCTAssertEqual(spent.rounds, 1)
        XCTAssertEqual(spent.roundsWithoutDp, 1)
        XCTAssertTrue(spent.epsilon.isInfinite)
        XCTAssertTrue(try client.export().contains("\"rounds_trained\": 1"))
        try client.forgetMe()
        XCTAssertEqual(try client.stats().interactions, 0)
    }

    func testErrorsAreTypedAndChangeNothing() throws {
        let client = try newClient()
        _ = try client.recordBatch(interactions: likes(Array(server.itemKeys.prefix(3))))
        let before = try client.stats()
        XCTAssertThrowsError(try client.record(interaction: Interaction(itemKey: " ", kind: .view, timestampMs: 1))) {
            guard case FedmrError.InvalidInput = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try client.applyCatalog(bytes: server.catalog.dropLast(3))) {
            guard case FedmrError.InvalidMessage = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try client.applyModel(bytes: try sampleServerData(nItems: 60, seed: 3).model)) {
            guard case FedmrError.Incompatible = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try client.recommend(k: 5, excludeSeen: true, candidates: ["no-such-item"])) {
            guard case FedmrError.UnknownItem = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try client.stats(), before)
    }

    func testCancelDiscardsTheRound() throws {
        let client = try newClient()
        _ = try client.recordBatch(interactions: likes(Array(server.itemKeys.prefix(10))))
        let token = CancelToken()
        final class CancelAtTwo: TrainProgress, @unchecked Sendable {
            let token: CancelToken
            init(_ token: CancelToken) { self.token = token }
            func onEpoch(epoch: UInt32, epochs: UInt32, loss: Float) {
                if epoch == 2 { token.cancel() }
            }
        }
        XCTAssertThrowsError(try client.train(options: TrainOptions(timeBudgetMs: nil), progress: CancelAtTwo(token), cancel: token)) {
            guard case FedmrError.Cancelled = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try client.pendingUploads().count, 0)
        let report = try client.train(options: TrainOptions(timeBudgetMs: 0), progress: nil, cancel: nil)
        XCTAssertEqual(report.epochsRun, 1)
        XCTAssertTrue(report.stoppedEarly)
    }

    func testNotReadyBeforeAModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let client = try FedmrClient.open(config: ClientConfig(
            dbPath: dir.appendingPathComponent("e.sqlite").path, retentionCap: 50000, seed: nil))
        XCTAssertThrowsError(try client.recommend(k: 3, excludeSeen: true, candidates: nil)) {
            guard case FedmrError.NotReady = $0 else { return XCTFail("\($0)") }
        }
    }
}
