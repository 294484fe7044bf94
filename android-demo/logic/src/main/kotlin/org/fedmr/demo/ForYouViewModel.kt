package org.fedmr.demo

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import uniffi.fedmr_ffi.FedmrException

/** What the demo's screens show. */
data class DemoUiState(
    val loading: Boolean = true,
    /** (item key, title) of the browse list's first page. */
    val browse: List<Pair<String, String>> = emptyList(),
    val forYou: ForYouState? = null,
    val error: String? = null,
)

/**
 * The screens' state holder, plain Kotlin so the JVM tests drive it: the
 * Android `ViewModel` (app/DemoViewModel) only gives it `viewModelScope`.
 * Every method returns at once; the work runs in [scope] and reaches the
 * SDK through [repository], off the main thread.
 */
class ForYouViewModel(
    private val repository: DemoRepository,
    private val scope: CoroutineScope,
    private val pageSize: Int = 100,
) {
    private val mutableState = MutableStateFlow(DemoUiState())

    /** Observed by the UI (Compose: `collectAsState()`). */
    val state: StateFlow<DemoUiState> = mutableState.asStateFlow()

    /** Loads the browse list and the "For you" list. */
    fun start(): Job = scope.launch {
        val catalog = repository.catalog()
        mutableState.update { it.copy(browse = catalog.page(0, pageSize).map { key -> key to catalog.title(key) }) }
        load()
    }

    /** The user tapped an item: record it, then refresh "For you". */
    fun tap(itemKey: String): Job = scope.launch {
        try {
            repository.tap(itemKey)
        } catch (e: FedmrException) {
            mutableState.update { it.copy(error = e.message) }
        }
        load()
    }

    /** Re-reads "For you" (after a tab switch or a background training). */
    fun refresh(): Job = scope.launch { load() }

    private suspend fun load() {
        try {
            val forYou = repository.forYou()
            mutableState.update { it.copy(loading = false, forYou = forYou, error = null) }
        } catch (e: FedmrException) {
            mutableState.update { it.copy(loading = false, error = e.message) }
        }
    }
}
