// The Android library (AAR) of the FedMR SDK: the uniffi-generated Kotlin
// (src/main/kotlin, from bindings/generate.sh) plus libfedmr_ffi.so for the
// four Android ABIs (src/main/jniLibs, from cargo-ndk; see README.md).
// Needs the Android SDK and NDK, which the project's CI machine does not
// have: CI runs the same Kotlin against the host library on the JVM instead
// (run-jvm-tests.sh).
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

android {
    namespace = "org.fedmr.sdk"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
}

dependencies {
    // uniffi's generated Kotlin loads the library through JNA.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
}
