package org.fedmr.demo.app

import android.content.Context
import androidx.compose.foundation.layout.*
import androidx.compose.material3.*
import androidx.compose.runtime.*
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import org.fedmr.demo.ServerUrl

/** Server URL and token, kept in SharedPreferences. */
class Settings(context: Context) {
    private val prefs = context.getSharedPreferences("fedmr", Context.MODE_PRIVATE)
    var serverUrl: String?
        get() = prefs.getString("server_url", null)
        set(v) = prefs.edit().putString("server_url", v).apply()
    var token: String
        get() = prefs.getString("token", "") ?: ""
        set(v) = prefs.edit().putString("token", v).apply()
}

@Composable
fun SettingsScreen(context: Context) {
    val settings = remember { Settings(context) }
    var text by remember { mutableStateOf(settings.serverUrl ?: "") }
    var error by remember { mutableStateOf<String?>(null) }
    Column(Modifier.padding(16.dp)) {
        OutlinedTextField(value = text, onValueChange = { text = it }, label = { Text("Server URL") })
        error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        Button(onClick = {
            val (url, why) = ServerUrl.parse(text)
            error = why
            if (url != null) settings.serverUrl = url
        }) { Text("Save") }
    }
}
