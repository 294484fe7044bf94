package org.fedmr.demo

/** Human titles for the sample catalog's item keys (item-0, item-1, ...). */
class SampleCatalog(val keys: List<String>) {
    private val adjectives = listOf("Blue", "Quiet", "Golden", "Swift", "Hidden", "Bright", "Wild", "Gentle")
    private val nouns = listOf("River", "Garden", "Echo", "Harbor", "Lantern", "Meadow", "Orbit", "Canyon")

    fun title(key: String): String {
        val n = key.substringAfter("item-").toIntOrNull() ?: return key
        return "${adjectives[n % adjectives.size]} ${nouns[(n / adjectives.size) % nouns.size]} #$n"
    }

    fun page(page: Int, size: Int): List<String> = keys.drop(page * size).take(size)
}
