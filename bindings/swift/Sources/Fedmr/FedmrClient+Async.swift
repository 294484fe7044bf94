// Swift concurrency over the SDK's blocking calls: each `async` function
// runs the call on a detached task (off the caller's actor, the main actor
// included); cancelling the calling task raises the SDK's cancel token, so
// a training stops at its next check and writes nothing. The same design as
// Kotlin's SuspendingFedmrClient (see the README, "Threading"). Parsed here
// with tree-sitter; not compiled (no Swift toolchain on the CI machine).
import Foundation

extension FedmrClient {
    /// `train` off the caller's actor; cancelling the task cancels the round.
    public func trainAsync(options: TrainOptions = TrainOptions(), progress: TrainProgress? = nil) async throws -> TrainReport {
        let token = CancelToken()
        return try await withTaskCancellationHandler {
            try await Task.detached(priority: .utility) {
                try self.train(options: options, progress: progress, cancel: token)
            }.value
        } onCancel: {
            token.cancel()
        }
    }

    /// `sync` off the caller's actor.
    public func syncAsync(remote: Remote) async throws -> SyncReport {
        try await Task.detached(priority: .utility) { try self.sync(remote: remote) }.value
    }

    /// `upload` off the caller's actor.
    public func uploadAsync(remote: Remote) async throws -> UploadReport {
        try await Task.detached(priority: .utility) { try self.upload(remote: remote) }.value
    }

    /// `recommend` off the caller's actor.
    public func recommendAsync(k: UInt32, excludeSeen: Bool = true, candidates: [String]? = nil) async throws -> [Recommendation] {
        try await Task.detached(priority: .userInitiated) {
            try self.recommend(k: k, excludeSeen: excludeSeen, candidates: candidates)
        }.value
    }

    /// `record` off the caller's actor.
    public func recordAsync(interaction: Interaction) async throws {
        try await Task.detached(priority: .userInitiated) { try self.record(interaction: interaction) }.value
    }
}
