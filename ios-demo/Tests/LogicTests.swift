// XCTest for the demo's logic layer, the counterpart of
// android-demo/logic/src/test/kotlin/LogicTest.kt. Runs on macOS with Xcode;
// on the Linux CI it is only parsed (no Swift toolchain there).

import XCTest
import Fedmr
@testable import FedmrDemo

final class LogicTests: XCTestCase {
    private func newClient() throws -> FedmrClient {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try FedmrClient.open(config: ClientConfig(
            dbPath: dir.appendingPathComponent("demo.sqlite").path, retentionCap: 50000, seed: 1))
    }

    func testForYouBeforeAndAfterTraining() throws {
        let client = try newClient()
        let data = try sampleServerData(nItems: 200, seed: 2)
        let catalog = SampleCatalog(keys: data.itemKeys)
        let presenter = ForYouPresenter(client: client, catalog: catalog, size: 10)
        XCTAssertTrue(try presenter.load().items.isEmpty)
        _ = try client.applyCatalog(bytes: data.catalog)
        _ = try client.applyModel(bytes: data.model)
        for (t, key) in data.itemKeys.prefix(5).enumerated() {
            try client.record(interaction: Interaction(itemKey: key, kind: .click, timestampMs: Int64(t)))
        }
        _ = try client.train(options: TrainOptions(timeBudgetMs: nil), progress: nil, cancel: nil)
        let state = try presenter.load()
        XCTAssertTrue(state.personalised)
        XCTAssertEqual(state.items.count, 10)
        XCTAssertEqual(state.modalityBars.first?.label, "What you interacted with")
    }

    func testServerDownKeepsTheUpdate() throws {
        let client = try newClient()
        let data = try sampleServerData(nItems: 50, seed: 2)
        _ = try client.applyCatalog(bytes: data.catalog)
        _ = try client.applyModel(bytes: data.model)
        try client.record(interaction: Interaction(itemKey: "item-1", kind: .like, timestampMs: 1))
        _ = try client.train(options: TrainOptions(timeBudgetMs: nil), progress: nil, cancel: nil)
        let down = Remote(baseUrl: "http://127.0.0.1:9", token: "t", timeoutMs: 500, maxAttempts: 1)
        let outcome = try BackgroundSync(client: client, remote: { down }).run()
        XCTAssertTrue(outcome.retry)
        XCTAssertEqual(outcome.pending, 1)
    }
}
