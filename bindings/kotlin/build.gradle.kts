// The Android library (AAR) of the FedMR SDK: the uniffi-generated Kotlin
// (src/main/kotlin/uniffi, from bindings/generate.sh), its coroutine layer
// (src/main/kotlin/org/fedmr/sdk) and libfedmr_ffi.so for the four Android
// ABIs (src/main/jniLibs/<abi>/, written by build-android-libs.sh with
// cargo-ndk). Needs the Android SDK and NDK, which the project's CI machine
// does not have: CI compiles and runs the same Kotlin on the JVM against
// the host library instead (run-jvm-tests.sh). See README.md.
// Plugin versions come from the including build: settings.gradle.kts here,
// the root build.gradle.kts of an app that includes this module.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

group = "org.fedmr"
version = "0.1.0"

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
    sourceSets["main"].java.srcDirs("src/main/kotlin")
    // cargo-ndk's `-o src/main/jniLibs` layout: arm64-v8a/, armeabi-v7a/, x86_64/, x86/.
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

dependencies {
    // uniffi's generated Kotlin loads the library through JNA (the AAR
    // variant carries JNA's own native parts for Android).
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // SuspendingFedmrClient's constructor takes a CoroutineDispatcher.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "org.fedmr"
            artifactId = "fedmr-sdk"
            version = project.version.toString()
            afterEvaluate { from(components["release"]) }
            pom {
                name.set("FedMR SDK")
                description.set("Federated multimodal on-device recommendation (Kotlin bindings of fedmr-sdk)")
                licenses {
                    license {
                        name.set("Apache-2.0")
                        url.set("https://www.apache.org/licenses/LICENSE-2.0")
                    }
                }
            }
        }
    }
    repositories {
        // `gradle publishReleasePublicationToLocalRepository` writes the AAR,
        // its POM (with the JNA and coroutines dependencies) and sources here.
        maven {
            name = "local"
            url = uri(layout.buildDirectory.dir("repo"))
        }
    }
}
