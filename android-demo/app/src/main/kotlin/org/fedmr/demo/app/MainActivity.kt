package org.fedmr.demo.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.*
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.*
import androidx.compose.runtime.*
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp

/**
 * The UI layer only: browse the sample catalog, tap to record, "For you"
 * with scores and preference bars, settings. It renders [DemoViewModel]'s
 * state and forwards taps; every SDK call happens off the main thread in
 * the logic module (android-demo/logic: repository and view-model, tested
 * on the JVM).
 */
class MainActivity : ComponentActivity() {
    private val model: DemoViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        SyncWorker.schedule(this)
        setContent { MaterialTheme { Screen() } }
    }

    @Composable
    private fun Screen() {
        var tab by remember { mutableStateOf(0) }
        val state by model.screen.state.collectAsState()
        Column(Modifier.fillMaxSize()) {
            TabRow(selectedTabIndex = tab) {
                listOf("Browse", "For you", "Settings").forEachIndexed { i, title ->
                    Tab(selected = tab == i, onClick = {
                        tab = i
                        if (i == 1) model.screen.refresh()
                    }, text = { Text(title) })
                }
            }
            state.error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
            when (tab) {
                0 -> LazyColumn {
                    items(state.browse) { (key, title) ->
                        Text(title, Modifier.fillMaxWidth().clickable { model.screen.tap(key) }.padding(16.dp))
                    }
                }
                1 -> Column(Modifier.padding(16.dp)) {
                    if (state.loading) CircularProgressIndicator()
                    val forYou = state.forYou ?: return@Column
                    forYou.message?.let { Text(it) }
                    forYou.modalityBars.forEach { bar ->
                        Text(bar.label)
                        LinearProgressIndicator(progress = { bar.fraction }, Modifier.fillMaxWidth())
                    }
                    LazyColumn {
                        items(forYou.items) { item -> Text("${item.title}  (${"%.2f".format(item.score)})", Modifier.padding(8.dp)) }
                    }
                }
                else -> SettingsScreen(this@MainActivity)
            }
        }
    }
}
