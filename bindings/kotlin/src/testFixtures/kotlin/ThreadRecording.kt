// Test fixture shared by the SDK's JVM suite and the Android demo's:
// proves on which threads SDK calls run.
package org.fedmr.testing

import java.lang.reflect.InvocationTargetException
import java.lang.reflect.Proxy
import uniffi.fedmr_ffi.FedmrClientInterface

/** A client whose every call (close() included) notes the thread it ran on. */
fun threadRecordingClient(real: FedmrClientInterface, threads: MutableList<String>): FedmrClientInterface =
    Proxy.newProxyInstance(
        FedmrClientInterface::class.java.classLoader,
        arrayOf(FedmrClientInterface::class.java, AutoCloseable::class.java),
    ) { _, method, args ->
        threads.add(Thread.currentThread().name)
        try {
            method.invoke(real, *(args ?: emptyArray()))
        } catch (e: InvocationTargetException) {
            throw e.targetException
        }
    } as FedmrClientInterface
