package org.fedmr.demo

import java.net.URI

/** The server URL the user typed in settings, checked before it is used. */
object ServerUrl {
    /** The normalised URL, or null with the reason it is not usable. */
    fun parse(text: String): Pair<String?, String?> {
        val trimmed = text.trim().trimEnd('/')
        if (trimmed.isEmpty()) return null to "Enter the server address."
        val uri = try {
            URI(trimmed)
        } catch (e: Exception) {
            return null to "Not a valid address."
        }
        if (uri.scheme !in setOf("http", "https") || uri.host.isNullOrEmpty()) {
            return null to "Use an http:// or https:// address."
        }
        if (uri.scheme == "http" && uri.host !in setOf("127.0.0.1", "localhost", "10.0.2.2")) {
            return null to "Plain http is only allowed for a local test server."
        }
        return trimmed to null
    }
}
