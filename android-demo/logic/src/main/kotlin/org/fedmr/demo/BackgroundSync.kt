package org.fedmr.demo

import uniffi.fedmr_ffi.FedmrClientInterface
import uniffi.fedmr_ffi.FedmrException
import uniffi.fedmr_ffi.Remote
import uniffi.fedmr_ffi.TrainOptions

/** What one background run did, for the log and for WorkManager's retry decision. */
data class SyncOutcome(
    val synced: Boolean,
    val trained: Boolean,
    val delivered: Int,
    val pending: Int,
    val retry: Boolean,
    val note: String,
)

/**
 * The background job (WorkManager on Android, BGTaskScheduler on iOS):
 * download what changed, train within a time budget, upload the outbox.
 * A server that cannot be reached is not a failure: updates wait in the
 * outbox and the job asks to be retried later. Blocking: WorkManager runs
 * a `Worker` on its own background thread.
 */
class BackgroundSync(
    private val client: FedmrClientInterface,
    private val remote: () -> Remote,
    private val trainBudgetMs: ULong = 20_000uL,
) {
    fun run(): SyncOutcome {
        val server = remote()
        val synced = try {
            client.sync(server)
            true
        } catch (e: FedmrException.Network) {
            return SyncOutcome(false, false, 0, client.pendingUploads().size, true, "server unreachable: ${e.reason}")
        }
        val trained = try {
            client.train(TrainOptions(timeBudgetMs = trainBudgetMs))
            true
        } catch (e: FedmrException.NotReady) {
            false // nothing to learn from yet
        }
        val upload = client.upload(server)
        // A secure round's update waits for other phones between phases:
        // it stays pending and the job asks to run again.
        val pending = upload.remaining.toInt() + upload.waiting.toInt()
        return SyncOutcome(
            synced = synced,
            trained = trained,
            delivered = upload.delivered.toInt(),
            pending = pending,
            retry = pending > 0,
            note = upload.lastError ?: "ok",
        )
    }
}
