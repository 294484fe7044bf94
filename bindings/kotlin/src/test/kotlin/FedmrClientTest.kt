// The whole FedmrClient API walked from Kotlin on the JVM, as an app would:
// open, apply a catalog and model, record, train with a progress callback,
// recommend, preferences, export, forgetMe, each error path, and close().
//
// A plain main() with its own tiny runner, so CI needs only kotlinc and JNA
// (bindings/kotlin/run-jvm-tests.sh); it exits non-zero on any failure.
// The coroutine wrapper's tests are in SuspendingClientTest.kt.

import java.nio.file.Files
import uniffi.fedmr_ffi.*

internal var failures = 0

internal fun test(name: String, body: () -> Unit) {
    try {
        body()
        println("ok   $name")
    } catch (e: Throwable) {
        failures++
        println("FAIL $name: $e")
    }
}

internal fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

internal inline fun <reified E : Throwable> assertThrows(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

internal fun newClient(server: SampleServerData): FedmrClient {
    val dir = Files.createTempDirectory("fedmr-kotlin")
    val client = FedmrClient.open(ClientConfig(dbPath = dir.resolve("fedmr.sqlite").toString(), seed = 5uL))
    check(client.applyCatalog(server.catalog)) { "catalog installed" }
    check(client.applyModel(server.model)) { "model installed" }
    return client
}

internal fun likes(keys: List<String>) =
    keys.mapIndexed { t, k -> Interaction(itemKey = k, kind = InteractionKind.LIKE, timestampMs = t.toLong()) }

fun main() {
    val server = sampleServerData(120u, 3uL)

    test("defaults: train() and recommend(k) need nothing else") {
        newClient(server).use { client ->
            client.recordBatch(likes(server.itemKeys.take(5)))
            check(client.train().epochsRun == 5u) { "trained with the defaults" }
            check(client.recommend(10u).size == 10) { "10 recommendations" }
        }
    }

    test("walk the whole API") {
        newClient(server).use { client ->
            val keys = server.itemKeys.take(6)
            check(client.recordBatch(likes(keys)) == 6uL) { "recorded 6" }
            client.record(Interaction("not-in-catalog", InteractionKind.WEIGHTED, 99L, weight = 0.5f))
            val stats = client.stats()
            check(stats.interactions == 7uL && stats.knownItems == 6uL && stats.unknownItems == 1uL) { "$stats" }

            val epochs = mutableListOf<UInt>()
            val report = client.train(TrainOptions(), object : TrainProgress {
                override fun onEpoch(epoch: UInt, epochs_: UInt, loss: Float) {
                    check(loss.isFinite()) { "finite loss" }
                    epochs.add(epoch)
                }
            }, null)
            check(report.epochsRun == 5u && epochs == listOf(1u, 2u, 3u, 4u, 5u)) { "epochs $epochs" }
            check(client.pendingUploads().size == 1) { "one pending upload" }
            check(client.integrityCheck()) { "the store passes its integrity check" }

            val top = client.recommend(10u, true, null)
            check(top.size == 10) { "10 recommendations" }
            check(top.none { it.itemKey in keys }) { "seen items excluded" }
            check(top.zipWithNext().all { (a, b) -> a.score >= b.score }) { "sorted" }
            check(client.scores().size == 120) { "a score per item" }

            val prefs = client.preferences()
            check(prefs.trained) { "trained" }
            check(prefs.experts.map { it.expert } == listOf("sum", "mlp", "gate")) { "${prefs.experts}" }
            check(Math.abs(prefs.experts.sumOf { it.weight.toDouble() } - 1.0) < 1e-5) { "weights sum to 1" }
            check(prefs.modalities!!.map { it.modality }.first() == "id") { "${prefs.modalities}" }

            val spent = client.privacySpent(1e-5)
            check(spent.rounds == 1uL && spent.roundsWithoutDp == 1uL && spent.epsilon.isInfinite()) { "$spent" }

            val export = client.export()
            check(export.contains("\"rounds_trained\": 1")) { export.take(200) }

            client.forgetMe()
            val after = client.stats()
            check(after.interactions == 0uL && after.pendingUploads == 0uL && after.roundsTrained == 0uL) { "$after" }
        }
    }

    test("errors are typed and change nothing") {
        newClient(server).use { client ->
            client.recordBatch(likes(server.itemKeys.take(3)))
            val before = client.stats()
            assertThrows<FedmrException.InvalidInput> {
                client.record(Interaction(" ", InteractionKind.VIEW, 1L))
            }
            assertThrows<FedmrException.InvalidInput> {
                client.record(Interaction("a", InteractionKind.WEIGHTED, 1L, weight = Float.NaN))
            }
            assertThrows<FedmrException.InvalidInput> {
                client.record(Interaction("a", InteractionKind.WEIGHTED, 1L))
            }
            assertThrows<FedmrException.InvalidMessage> {
                client.applyCatalog(server.catalog.copyOf(server.catalog.size - 3))
            }
            assertThrows<FedmrException.InvalidMessage> { client.applyModel(byteArrayOf(1, 2, 3)) }
            assertThrows<FedmrException.Incompatible> { client.applyModel(sampleServerData(60u, 3uL).model) }
            val unknown = assertThrows<FedmrException.UnknownItem> {
                client.recommend(5u, true, listOf("no-such-item"))
            }
            check(unknown.key == "no-such-item") { unknown.key }
            check(client.stats() == before) { "nothing changed" }
        }
    }

    test("a callback that throws is a typed error and writes nothing") {
        newClient(server).use { client ->
            client.recordBatch(likes(server.itemKeys.take(10)))
            val before = client.stats()
            val failed = assertThrows<FedmrException.CallbackFailed> {
                client.train(TrainOptions(), object : TrainProgress {
                    override fun onEpoch(epoch: UInt, epochs: UInt, loss: Float) {
                        if (epoch == 2u) throw IllegalStateException("the app's view is gone")
                    }
                }, null)
            }
            check(failed.reason.contains("view is gone")) { failed.reason }
            check(client.stats() == before) { "nothing written" }
        }
    }

    test("cancel discards the round; a zero budget stops after one epoch") {
        newClient(server).use { client ->
            client.recordBatch(likes(server.itemKeys.take(10)))
            val token = CancelToken()
            assertThrows<FedmrException.Cancelled> {
                client.train(TrainOptions(), object : TrainProgress {
                    override fun onEpoch(epoch: UInt, epochs: UInt, loss: Float) {
                        if (epoch == 2u) token.cancel()
                    }
                }, token)
            }
            check(client.pendingUploads().isEmpty()) { "nothing written" }
            val report = client.train(TrainOptions(timeBudgetMs = 0uL), null, null)
            check(report.epochsRun == 1u && report.stoppedEarly) { "$report" }
        }
    }

    test("not ready before a model; storage errors") {
        val dir = Files.createTempDirectory("fedmr-kotlin-empty")
        FedmrClient.open(ClientConfig(dbPath = dir.resolve("e.sqlite").toString())).use { client ->
            assertThrows<FedmrException.NotReady> { client.recommend(3u, true, null) }
            assertThrows<FedmrException.NotReady> { client.train(TrainOptions(), null, null) }
        }
        assertThrows<FedmrException.Storage> {
            FedmrClient.open(ClientConfig(dbPath = dir.resolve("no/such/dir.sqlite").toString()))
        }
    }

    test("close() then use is an error, not a crash") {
        val client = newClient(server)
        client.close()
        assertThrows<IllegalStateException> { client.stats() }
    }

    suspendingClientTests(server)

    if (failures > 0) {
        println("$failures test(s) failed")
        kotlin.system.exitProcess(1)
    }
    println("all Kotlin tests passed")
}
