// org.fedmr.sdk.SuspendingFedmrClient on the JVM: its calls leave the
// caller's thread, cancelling the coroutine stops a training and writes
// nothing, and what the dispatch costs per call (printed, not asserted:
// the README's threading decision quotes it).

import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.fedmr.sdk.SuspendingFedmrClient
import org.fedmr.testing.threadRecordingClient
import uniffi.fedmr_ffi.*

internal fun suspendingClientTests(server: SampleServerData) {
    test("suspending client: every SDK call runs off the calling thread") {
        newClient(server).use { real ->
            val threads = Collections.synchronizedList(mutableListOf<String>())
            val client = SuspendingFedmrClient(threadRecordingClient(real, threads))
            val caller = Thread.currentThread().name
            runBlocking {
                likes(server.itemKeys.take(5)).forEach { client.record(it) }
                client.train()
                check(client.recommend(10u).size == 10) { "10 recommendations" }
                check(client.preferences().trained) { "trained" }
                check(client.stats().roundsTrained == 1uL) { "one round" }
            }
            check(threads.size == 9) { "every call went through the client: $threads" }
            check(threads.none { it == caller }) { "a call ran on the caller's thread $caller: $threads" }
        }
    }

    test("suspending client: cancelling the coroutine stops training and writes nothing") {
        newClient(server).use { real ->
            real.recordBatch(likes(server.itemKeys.take(10)))
            val client = SuspendingFedmrClient(real)
            val inFirstEpoch = CountDownLatch(1)
            val epochs = Collections.synchronizedList(mutableListOf<UInt>())
            val slowProgress = object : TrainProgress {
                override fun onEpoch(epoch: UInt, epochs_: UInt, loss: Float) {
                    epochs.add(epoch)
                    inFirstEpoch.countDown()
                    Thread.sleep(300) // time for the test to cancel mid-round
                }
            }
            var outcome: Throwable? = null
            runBlocking {
                val job = launch(Dispatchers.Default, start = CoroutineStart.DEFAULT) {
                    try {
                        client.train(progress = slowProgress)
                    } catch (e: Throwable) {
                        outcome = e
                        throw e
                    }
                }
                check(inFirstEpoch.await(10, TimeUnit.SECONDS)) { "training started" }
                job.cancel()
                job.join()
                check(job.isCancelled) { "job cancelled" }
            }
            check(outcome is CancellationException) { "train ended with $outcome" }
            check(epochs.size < 5) { "training stopped early: epochs $epochs" }
            check(real.pendingUploads().isEmpty() && real.stats().roundsTrained == 0uL) { "nothing written" }
        }
    }

    test("suspending client: what dispatching costs per call (printed)") {
        newClient(server).use { real ->
            val client = SuspendingFedmrClient(real)
            val calls = 2_000
            repeat(200) { real.stats() } // warm up
            val direct = System.nanoTime().let { start ->
                repeat(calls) { real.stats() }
                (System.nanoTime() - start) / calls / 1_000.0
            }
            val dispatched = runBlocking {
                repeat(200) { client.stats() }
                val start = System.nanoTime()
                repeat(calls) { client.stats() }
                (System.nanoTime() - start) / calls / 1_000.0
            }
            val trainMs = System.nanoTime().let { start ->
                real.recordBatch(likes(server.itemKeys.take(10)))
                real.train()
                (System.nanoTime() - start) / 1e6
            }
            println(
                "     stats(): %.1f us direct, %.1f us through Dispatchers.IO (+%.1f us); one train() of 120 items: %.1f ms"
                    .format(direct, dispatched, dispatched - direct, trainMs),
            )
        }
    }
}
