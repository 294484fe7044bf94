package org.fedmr.demo.app

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import org.fedmr.demo.DemoRepository
import org.fedmr.demo.ForYouViewModel
import uniffi.fedmr_ffi.ClientConfig
import uniffi.fedmr_ffi.FedmrClient
import uniffi.fedmr_ffi.sampleServerData

/**
 * The Android side of the state holder: it gives the plain-Kotlin
 * [ForYouViewModel] a scope that lives as long as the screen, and the
 * repository the app's files directory. No SDK call happens here.
 */
class DemoViewModel(application: Application) : AndroidViewModel(application) {
    private val repository = DemoRepository(
        openClient = {
            FedmrClient.open(ClientConfig(dbPath = application.filesDir.resolve("fedmr.sqlite").path))
        },
        catalogKeys = { sampleServerData(500u, 1uL).itemKeys },
    )

    val screen = ForYouViewModel(repository, viewModelScope).also { it.start() }

    override fun onCleared() {
        // viewModelScope is already cancelled here: close on a scope of its own.
        CoroutineScope(Dispatchers.IO).launch { repository.close() }
    }
}
