// The Android demo as a Gradle build: the app (":app") and the SDK's
// library module (":sdk", bindings/kotlin). Build the SDK's native
// libraries first: bindings/kotlin/build-android-libs.sh.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "fedmr-demo"
include(":app")
include(":sdk")
project(":sdk").projectDir = file("../bindings/kotlin")
