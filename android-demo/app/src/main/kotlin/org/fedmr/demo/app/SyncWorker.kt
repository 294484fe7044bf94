package org.fedmr.demo.app

import android.content.Context
import androidx.work.*
import java.util.concurrent.TimeUnit
import org.fedmr.demo.BackgroundSync
import uniffi.fedmr_ffi.ClientConfig
import uniffi.fedmr_ffi.FedmrClient
import uniffi.fedmr_ffi.Remote

/** Background train + sync, only while charging on an unmetered network. */
class SyncWorker(context: Context, params: WorkerParameters) : Worker(context, params) {
    override fun doWork(): Result {
        val settings = Settings(applicationContext)
        val url = settings.serverUrl ?: return Result.success()
        FedmrClient.open(ClientConfig(dbPath = applicationContext.filesDir.resolve("fedmr.sqlite").path)).use { client ->
            val outcome = BackgroundSync(client, { Remote(baseUrl = url, token = settings.token) }).run()
            return if (outcome.retry) Result.retry() else Result.success()
        }
    }

    companion object {
        fun schedule(context: Context) {
            val constraints = Constraints.Builder()
                .setRequiresCharging(true)
                .setRequiredNetworkType(NetworkType.UNMETERED)
                .build()
            val request = PeriodicWorkRequestBuilder<SyncWorker>(6, TimeUnit.HOURS)
                .setConstraints(constraints)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 10, TimeUnit.MINUTES)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniquePeriodicWork("fedmr-sync", ExistingPeriodicWorkPolicy.KEEP, request)
        }
    }
}
