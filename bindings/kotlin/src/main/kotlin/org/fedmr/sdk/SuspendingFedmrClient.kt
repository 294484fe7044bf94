package org.fedmr.sdk

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.withContext
import uniffi.fedmr_ffi.CancelToken
import uniffi.fedmr_ffi.FedmrClientInterface
import uniffi.fedmr_ffi.FedmrException
import uniffi.fedmr_ffi.Interaction
import uniffi.fedmr_ffi.Preferences
import uniffi.fedmr_ffi.Recommendation
import uniffi.fedmr_ffi.Remote
import uniffi.fedmr_ffi.Stats
import uniffi.fedmr_ffi.SyncReport
import uniffi.fedmr_ffi.TrainOptions
import uniffi.fedmr_ffi.TrainProgress
import uniffi.fedmr_ffi.TrainReport
import uniffi.fedmr_ffi.UploadReport

/**
 * The calls of [FedmrClientInterface] as `suspend` functions, safe to call
 * from the main thread: each runs the blocking call on [dispatcher]
 * (default [Dispatchers.IO]). Cancelling the coroutine of [train] raises
 * the SDK's cancel token, so the training stops at its next check and
 * writes nothing; [train] returns (by throwing [CancellationException])
 * only once the native call has stopped.
 *
 * Why wrappers and not uniffi's async functions: the SDK's calls are
 * blocking by design (training is CPU work, SQLite and the HTTP client are
 * blocking), so an async export would still occupy a thread for the whole
 * call; dispatching here costs tens of microseconds per call (measured in
 * the JVM suite) and keeps one Rust API for every language. See the
 * README, "Threading".
 *
 * The wrapper does not own the client: close the [client] yourself.
 */
class SuspendingFedmrClient(
    val client: FedmrClientInterface,
    private val dispatcher: CoroutineDispatcher = Dispatchers.IO,
) {
    /** [FedmrClientInterface.train] off the caller's thread; cancellable. */
    suspend fun train(options: TrainOptions = TrainOptions(), progress: TrainProgress? = null): TrainReport {
        val token = CancelToken()
        try {
            return coroutineScope {
                val work = async(dispatcher) {
                    try {
                        client.train(options, progress, token)
                    } catch (e: FedmrException.Cancelled) {
                        // Only this wrapper holds the token: the coroutine was cancelled.
                        throw CancellationException("training cancelled").apply { initCause(e) }
                    }
                }
                try {
                    work.await()
                } catch (e: CancellationException) {
                    // The scope now waits for the native call, which sees the token.
                    token.cancel()
                    throw e
                }
            }
        } finally {
            token.close()
        }
    }

    /** [FedmrClientInterface.sync] off the caller's thread. */
    suspend fun sync(remote: Remote): SyncReport = io { client.sync(remote) }

    /** [FedmrClientInterface.upload] off the caller's thread. */
    suspend fun upload(remote: Remote): UploadReport = io { client.upload(remote) }

    /** [FedmrClientInterface.recommend] off the caller's thread. */
    suspend fun recommend(k: UInt, excludeSeen: Boolean = true, candidates: List<String>? = null): List<Recommendation> =
        io { client.recommend(k, excludeSeen, candidates) }

    /** [FedmrClientInterface.record] off the caller's thread. */
    suspend fun record(interaction: Interaction) = io { client.record(interaction) }

    /** [FedmrClientInterface.preferences] off the caller's thread. */
    suspend fun preferences(): Preferences = io { client.preferences() }

    /** [FedmrClientInterface.stats] off the caller's thread. */
    suspend fun stats(): Stats = io { client.stats() }

    private suspend fun <T> io(call: () -> T): T = withContext(dispatcher) { call() }
}
