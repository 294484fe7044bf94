package org.fedmr.demo

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import uniffi.fedmr_ffi.FedmrClientInterface
import uniffi.fedmr_ffi.Interaction
import uniffi.fedmr_ffi.InteractionKind

/**
 * The app's one door to the SDK: every SDK call, opening the client
 * included, runs on [io] (the SDK's calls block; the main thread must never
 * wait on SQLite or training). The UI talks to [ForYouViewModel], which
 * talks to this.
 *
 * @param openClient opens the client (for example `FedmrClient.open(...)`).
 * @param catalogKeys the sample catalog's item keys (an SDK call too).
 */
class DemoRepository(
    private val openClient: () -> FedmrClientInterface,
    private val catalogKeys: () -> List<String>,
    private val io: CoroutineDispatcher = Dispatchers.IO,
    private val clock: () -> Long = System::currentTimeMillis,
) {
    private val lock = Mutex()
    private var client: FedmrClientInterface? = null
    private var catalog: SampleCatalog? = null

    /** The sample catalog, loaded once. */
    suspend fun catalog(): SampleCatalog = sdk { catalogLocked() }

    /** The "For you" screen's state. */
    suspend fun forYou(size: Int = 20): ForYouState =
        sdk { ForYouPresenter(clientLocked(), catalogLocked(), size).load() }

    /** Records a tap on an item. */
    suspend fun tap(itemKey: String) = sdk {
        clientLocked().record(Interaction(itemKey, InteractionKind.CLICK, clock()))
    }

    /** Closes the client (the next call opens it again). */
    suspend fun close() = sdk {
        (client as? AutoCloseable)?.close()
        client = null
    }

    private suspend fun <T> sdk(work: () -> T): T = withContext(io) { lock.withLock { work() } }

    private fun clientLocked(): FedmrClientInterface = client ?: openClient().also { client = it }

    private fun catalogLocked(): SampleCatalog = catalog ?: SampleCatalog(catalogKeys()).also { catalog = it }
}
