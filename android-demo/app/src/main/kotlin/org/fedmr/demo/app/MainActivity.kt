package org.fedmr.demo.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.*
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.*
import androidx.compose.runtime.*
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import org.fedmr.demo.*
import uniffi.fedmr_ffi.*

/**
 * The UI layer only: browse the sample catalog, tap to record, "For you"
 * with scores and preference bars, settings. All decisions are in the
 * plain-Kotlin logic module (android-demo/logic), tested on the JVM.
 */
class MainActivity : ComponentActivity() {
    private lateinit var client: FedmrClient
    private lateinit var catalog: SampleCatalog

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        client = FedmrClient.open(ClientConfig(dbPath = filesDir.resolve("fedmr.sqlite").path))
        val sample = sampleServerData(500u, 1uL)
        catalog = SampleCatalog(sample.itemKeys)
        SyncWorker.schedule(this)
        setContent { MaterialTheme { Screen() } }
    }

    override fun onDestroy() {
        client.close()
        super.onDestroy()
    }

    @Composable
    private fun Screen() {
        var tab by remember { mutableStateOf(0) }
        var state by remember { mutableStateOf(ForYouPresenter(client, catalog).load()) }
        Column(Modifier.fillMaxSize()) {
            TabRow(selectedTabIndex = tab) {
                listOf("Browse", "For you", "Settings").forEachIndexed { i, title ->
                    Tab(selected = tab == i, onClick = {
                        tab = i
                        state = ForYouPresenter(client, catalog).load()
                    }, text = { Text(title) })
                }
            }
            when (tab) {
                0 -> LazyColumn {
                    items(catalog.page(0, 100)) { key ->
                        Text(catalog.title(key), Modifier.fillMaxWidth().clickable {
                            client.record(Interaction(key, InteractionKind.Click, System.currentTimeMillis()))
                        }.padding(16.dp))
                    }
                }
                1 -> Column(Modifier.padding(16.dp)) {
                    state.message?.let { Text(it) }
                    state.modalityBars.forEach { bar ->
                        Text(bar.label)
                        LinearProgressIndicator(progress = { bar.fraction }, Modifier.fillMaxWidth())
                    }
                    LazyColumn {
                        items(state.items) { item -> Text("${item.title}  (${"%.2f".format(item.score)})", Modifier.padding(8.dp)) }
                    }
                }
                else -> SettingsScreen(this@MainActivity)
            }
        }
    }
}
