// The demo app's logic layer on the JVM: the presenter, the background job
// against a real fedmr-server (the host binary, started on a free port),
// and settings validation. A plain main() runner, like the SDK's JVM suite.

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.Collections
import java.util.concurrent.Executors
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.fedmr.demo.*
import org.fedmr.testing.threadRecordingClient
import uniffi.fedmr_ffi.*

private var failures = 0

private fun test(name: String, body: () -> Unit) {
    try {
        body(); println("ok   $name")
    } catch (e: Throwable) {
        failures++; println("FAIL $name: $e")
    }
}

private fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

private fun newClient(): FedmrClient {
    val dir = Files.createTempDirectory("fedmr-demo")
    return FedmrClient.open(ClientConfig(dbPath = dir.resolve("demo.sqlite").toString(), seed = 1uL))
}

/** fedmr-server on 127.0.0.1:<free port>; stopped by close(). */
/** One phone's tests take hidden-count: secure aggregation (the default) needs three per round. */
class Server(binary: String, protection: String = "hidden-count", minUpdates: Int = 100) : AutoCloseable {
    private val dataDir = Files.createTempDirectory("fedmr-demo-server")
    private val process = ProcessBuilder(
        binary, "serve", "--init", "--bind", "127.0.0.1:0", "--data-dir", dataDir.toString(),
        "--admin-token", "demo-admin", "--min-updates", minUpdates.toString(),
        "--protection", protection,
    ).redirectErrorStream(true).start()
    val url: String = process.inputStream.bufferedReader().readLine()!!.trim().substringAfterLast(' ')

    fun token(client: String): String {
        val request = HttpRequest.newBuilder(URI("$url/v1/admin/clients"))
            .header("Authorization", "Bearer demo-admin")
            .POST(HttpRequest.BodyPublishers.ofString(client)).build()
        return HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body()
    }

    override fun close() {
        process.destroyForcibly().waitFor()
    }
}

fun main(args: Array<String>) {
    val serverBinary = args.getOrNull(0) ?: error("usage: LogicTestKt <path to fedmr-server>")

    test("For you: empty before sync, then titled items and preference bars") {
        newClient().use { client ->
            val data = sampleServerData(200u, 2uL)
            val catalog = SampleCatalog(data.itemKeys)
            val presenter = ForYouPresenter(client, catalog, size = 10)
            val before = presenter.load()
            check(before.items.isEmpty() && before.message!!.contains("sync")) { "$before" }

            client.applyCatalog(data.catalog)
            client.applyModel(data.model)
            val tapped = catalog.page(0, 5)
            tapped.forEachIndexed { t, k -> client.record(Interaction(k, InteractionKind.CLICK, t.toLong())) }
            val untrained = presenter.load()
            check(!untrained.personalised && untrained.message != null) { "$untrained" }
            client.train()
            val state = presenter.load()
            check(state.personalised && state.message == null) { "$state" }
            check(state.items.size == 10 && state.items.none { it.itemKey in tapped }) { "${state.items}" }
            check(state.items.all { it.title.contains("#") }) { "titles" }
            check(state.modalityBars.map { it.label }.first() == "What you interacted with") { "${state.modalityBars}" }
            check(Math.abs(state.modalityBars.sumOf { it.fraction.toDouble() } - 1.0) < 1e-4) { "bars sum to 1" }
            check(state.expertBars.size == 3) { "${state.expertBars}" }
        }
    }

    test("view-model: the UI's calls reach the SDK only off the main thread") {
        // The app's main thread, as Dispatchers.Main would be on Android.
        val mainExecutor = Executors.newSingleThreadExecutor { Thread(it, "demo-main") }
        val scope = CoroutineScope(SupervisorJob() + mainExecutor.asCoroutineDispatcher())
        val sdkThreads = Collections.synchronizedList(mutableListOf<String>())
        val data = sampleServerData(200u, 2uL)
        val dir = Files.createTempDirectory("fedmr-demo-vm")
        val repository = DemoRepository(
            openClient = {
                sdkThreads.add(Thread.currentThread().name)
                val client = FedmrClient.open(ClientConfig(dbPath = dir.resolve("demo.sqlite").toString(), seed = 1uL))
                client.applyCatalog(data.catalog)
                client.applyModel(data.model)
                threadRecordingClient(client, sdkThreads)
            },
            catalogKeys = { sdkThreads.add(Thread.currentThread().name); data.itemKeys },
        )
        try {
            val screen = ForYouViewModel(repository, scope, pageSize = 20)
            runBlocking {
                screen.start().join()
                val loaded = screen.state.value
                check(!loaded.loading && loaded.browse.size == 20 && loaded.forYou != null) { "$loaded" }
                check(!loaded.forYou!!.personalised) { "nothing trained yet" }
                loaded.browse.take(5).forEach { (key, _) -> screen.tap(key).join() }
                check(screen.state.value.forYou!!.items.none { it.itemKey in loaded.browse.take(5).map { p -> p.first } }) {
                    "tapped items are excluded from For you"
                }
                withTimeout(5_000) { screen.state.first { it.error == null } }
                repository.close()
            }
            // open + catalog + (recommend + preferences) x 6 loads + 5 records + close
            check(sdkThreads.size == 2 + 12 + 5 + 1) { "${sdkThreads.size} SDK calls: $sdkThreads" }
            check(sdkThreads.none { it == "demo-main" }) { "an SDK call ran on the main thread: $sdkThreads" }
        } finally {
            scope.cancel()
            mainExecutor.shutdown()
        }
    }

    test("background job: sync, train, upload against a real server") {
        Server(serverBinary).use { server ->
            newClient().use { client ->
                val remote = Remote(baseUrl = server.url, token = server.token("demo-phone"))
                val first = BackgroundSync(client, { remote }).run()
                check(first.synced && !first.trained && !first.retry) { "nothing to train yet: $first" }
                (0 until 6).forEach { client.record(Interaction("item-$it", InteractionKind.LIKE, it.toLong())) }
                val second = BackgroundSync(client, { remote }).run()
                check(second.synced && second.trained && second.delivered == 1 && second.pending == 0) { "$second" }
                check(client.pendingUploads().isEmpty()) { "outbox flushed" }
            }
        }
    }

    test("background jobs: three phones through a secure round (the server's default), one on int8 downloads") {
        Server(serverBinary, protection = "secure", minUpdates = 3).use { server ->
            val phones = (0 until 3).map { newClient() }
            try {
                // Phone 0 downloads the model as int8: fewer bytes, and it still takes part.
                val remotes = phones.indices.map {
                    Remote(
                        baseUrl = server.url,
                        token = server.token("phone-$it"),
                        modelEncoding = if (it == 0) ModelEncoding.INT8 else ModelEncoding.F32,
                    )
                }
                val downloaded = phones.mapIndexed { p, client -> client.sync(remotes[p]).bytesDownloaded }
                check(downloaded[0] < downloaded[1] && downloaded[1] == downloaded[2]) { "bytes downloaded: $downloaded" }
                phones.forEachIndexed { p, client ->
                    (0 until 6).forEach { client.record(Interaction("item-${p * 7 + it}", InteractionKind.LIKE, it.toLong())) }
                }
                val delivered = IntArray(3)
                repeat(6) {
                    phones.forEachIndexed { p, client ->
                        if (delivered[p] == 0) {
                            val outcome = BackgroundSync(client, { remotes[p] }).run()
                            delivered[p] += outcome.delivered
                            // Until its round is through, the job asks to run again.
                            check(outcome.delivered == 1 || outcome.retry) { "$outcome" }
                        }
                    }
                }
                check(delivered.all { it == 1 }) { delivered.toList().toString() }
            } finally {
                phones.forEach { it.close() }
            }
        }
    }

    test("background job: server down keeps the update and asks for a retry") {
        newClient().use { client ->
            val data = sampleServerData(50u, 2uL)
            client.applyCatalog(data.catalog)
            client.applyModel(data.model)
            client.record(Interaction("item-1", InteractionKind.LIKE, 1L))
            client.train()
            val down = Remote(baseUrl = "http://127.0.0.1:9", token = "t", timeoutMs = 500uL, maxAttempts = 1u)
            val outcome = BackgroundSync(client, { down }).run()
            check(!outcome.synced && outcome.retry && outcome.pending == 1) { "$outcome" }
            check(client.pendingUploads().size == 1) { "kept" }
        }
    }

    test("settings: server URL validation") {
        check(ServerUrl.parse(" https://fedmr.example.com/ ").first == "https://fedmr.example.com") { "https" }
        check(ServerUrl.parse("http://10.0.2.2:8750").first == "http://10.0.2.2:8750") { "emulator host" }
        check(ServerUrl.parse("http://example.com").second != null) { "plain http to a remote host" }
        check(ServerUrl.parse("ftp://x").second != null) { "scheme" }
        check(ServerUrl.parse("").second != null) { "empty" }
    }

    if (failures > 0) {
        println("$failures test(s) failed"); kotlin.system.exitProcess(1)
    }
    println("all demo logic tests passed")
}
