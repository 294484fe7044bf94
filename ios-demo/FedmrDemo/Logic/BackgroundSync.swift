// Plain Swift: the background job run by BGTaskScheduler, the counterpart of
// android-demo/logic/BackgroundSync.kt.

import Foundation
import Fedmr

struct SyncOutcome: Equatable {
    let synced: Bool
    let trained: Bool
    let delivered: Int
    let pending: Int
    let retry: Bool
}

final class BackgroundSync {
    private let client: FedmrClient
    private let remote: () -> Remote
    private let trainBudgetMs: UInt64

    init(client: FedmrClient, remote: @escaping () -> Remote, trainBudgetMs: UInt64 = 20_000) {
        self.client = client
        self.remote = remote
        self.trainBudgetMs = trainBudgetMs
    }

    func run() throws -> SyncOutcome {
        let server = remote()
        do {
            _ = try client.sync(remote: server)
        } catch FedmrError.Network {
            return SyncOutcome(synced: false, trained: false, delivered: 0,
                               pending: try client.pendingUploads().count, retry: true)
        }
        var trained = true
        do {
            _ = try client.train(options: TrainOptions(timeBudgetMs: trainBudgetMs), progress: nil, cancel: nil)
        } catch FedmrError.NotReady {
            trained = false
        }
        let upload = try client.upload(remote: server)
        // A secure round's update waits for other phones between phases:
        // it stays pending and the job asks to run again.
        let pending = Int(upload.remaining) + Int(upload.waiting)
        return SyncOutcome(synced: true, trained: trained, delivered: Int(upload.delivered),
                           pending: pending, retry: pending > 0)
    }
}
