package org.fedmr.demo

import uniffi.fedmr_ffi.FedmrClientInterface
import uniffi.fedmr_ffi.FedmrException

/** One row of the "For you" list. */
data class ForYouItem(val itemKey: String, val title: String, val score: Float)

/** One bar of the "what drives your recommendations" chart; fractions sum to 1. */
data class PreferenceBar(val label: String, val fraction: Float)

/** Everything the "For you" screen shows. */
data class ForYouState(
    val items: List<ForYouItem>,
    val modalityBars: List<PreferenceBar>,
    val expertBars: List<PreferenceBar>,
    val personalised: Boolean,
    val message: String?,
)

/**
 * Builds the "For you" screen's state from the client. Blocking (two SDK
 * calls): [DemoRepository] runs it off the main thread. Plain Kotlin: the
 * Compose UI renders its result, the JVM tests check it.
 */
class ForYouPresenter(
    private val client: FedmrClientInterface,
    private val catalog: SampleCatalog,
    private val size: Int = 20,
) {
    fun load(): ForYouState =
        try {
            val recs = client.recommend(size.toUInt())
            val prefs = client.preferences()
            ForYouState(
                items = recs.map { ForYouItem(it.itemKey, catalog.title(it.itemKey), it.score) },
                modalityBars = prefs.modalities.orEmpty().map { PreferenceBar(label(it.modality), it.share) },
                expertBars = prefs.experts.map { PreferenceBar(label(it.expert), it.weight) },
                personalised = prefs.trained,
                message = if (prefs.trained) null else "Tap a few items: recommendations adapt after the next training run.",
            )
        } catch (e: FedmrException.NotReady) {
            ForYouState(emptyList(), emptyList(), emptyList(), false, "Waiting for the first sync with the server.")
        }

    private fun label(name: String) = when (name) {
        "id" -> "What you interacted with"
        "text" -> "Descriptions"
        "image" -> "Pictures"
        "sum" -> "Sum"
        "mlp" -> "MLP"
        "gate" -> "Gate"
        else -> name.replaceFirstChar { it.uppercase() }
    }
}
