// The SwiftUI layer only; decisions are in FedmrDemo/Logic.

import BackgroundTasks
import Fedmr
import SwiftUI

@main
struct FedmrDemoApp: App {
    static let taskId = "org.fedmr.demo.sync"
    let client: FedmrClient
    let catalog: SampleCatalog

    init() {
        let db = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("fedmr.sqlite").path
        client = try! FedmrClient.open(config: ClientConfig(dbPath: db, retentionCap: 50000, seed: nil))
        catalog = SampleCatalog(keys: try! sampleServerData(nItems: 500, seed: 1).itemKeys)
        let client = self.client
        BGTaskScheduler.shared.register(forTaskWithIdentifier: Self.taskId, using: nil) { task in
            let url = UserDefaults.standard.string(forKey: "server_url") ?? ""
            let token = UserDefaults.standard.string(forKey: "token") ?? ""
            let outcome = try? BackgroundSync(client: client, remote: {
                Remote(baseUrl: url, token: token, timeoutMs: 30000, maxAttempts: 5)
            }).run()
            task.setTaskCompleted(success: outcome.map { !$0.retry } ?? false)
            Self.schedule()
        }
        Self.schedule()
    }

    /// Background processing only while charging with a network (the
    /// counterpart of WorkManager's charging + unmetered constraints).
    static func schedule() {
        let request = BGProcessingTaskRequest(identifier: taskId)
        request.requiresExternalPower = true
        request.requiresNetworkConnectivity = true
        try? BGTaskScheduler.shared.submit(request)
    }

    var body: some Scene {
        WindowGroup {
            TabView {
                BrowseView(client: client, catalog: catalog).tabItem { Text("Browse") }
                ForYouView(presenter: ForYouPresenter(client: client, catalog: catalog)).tabItem { Text("For you") }
            }
        }
    }
}

struct BrowseView: View {
    let client: FedmrClient
    let catalog: SampleCatalog

    var body: some View {
        List(catalog.keys.prefix(100), id: \.self) { key in
            Button(catalog.title(key)) {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                // Off the main actor: the SDK's calls block (SQLite).
                Task { try? await client.recordAsync(interaction: Interaction(itemKey: key, kind: .click, timestampMs: now)) }
            }
        }
    }
}

struct ForYouView: View {
    let presenter: ForYouPresenter
    @State private var state: ForYouState?

    var body: some View {
        List {
            if let message = state?.message { Text(message) }
            ForEach(state?.modalityBars ?? [], id: \.label) { bar in
                VStack(alignment: .leading) {
                    Text(bar.label)
                    ProgressView(value: Double(bar.fraction))
                }
            }
            ForEach(state?.items ?? [], id: \.itemKey) { item in
                Text("\(item.title)  (\(String(format: "%.2f", item.score)))")
            }
        }
        // The presenter's SDK calls block: load on a detached task.
        .task { state = try? await Task.detached { try presenter.load() }.value }
    }
}
