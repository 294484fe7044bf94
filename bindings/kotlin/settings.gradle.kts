// The FedMR SDK's Android library as a Gradle build of its own: open this
// folder in Android Studio, or include it from an app's settings
// (android-demo/settings.gradle.kts does, as project ":sdk").
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "8.7.3"
        id("org.jetbrains.kotlin.android") version "2.1.0"
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "fedmr-sdk"
