// Plain Swift (no UIKit/SwiftUI): the "For you" screen's state, the
// counterpart of android-demo/logic/ForYou.kt.

import Foundation
import Fedmr

struct ForYouItem: Equatable {
    let itemKey: String
    let title: String
    let score: Float
}

struct PreferenceBar: Equatable {
    let label: String
    let fraction: Float
}

struct ForYouState: Equatable {
    let items: [ForYouItem]
    let modalityBars: [PreferenceBar]
    let expertBars: [PreferenceBar]
    let personalised: Bool
    let message: String?
}

final class ForYouPresenter {
    private let client: FedmrClient
    private let catalog: SampleCatalog
    private let size: UInt32

    init(client: FedmrClient, catalog: SampleCatalog, size: UInt32 = 20) {
        self.client = client
        self.catalog = catalog
        self.size = size
    }

    func load() throws -> ForYouState {
        do {
            let recs = try client.recommend(k: size, excludeSeen: true, candidates: nil)
            let prefs = try client.preferences()
            return ForYouState(
                items: recs.map { ForYouItem(itemKey: $0.itemKey, title: catalog.title($0.itemKey), score: $0.score) },
                modalityBars: (prefs.modalities ?? []).map { PreferenceBar(label: Self.label($0.modality), fraction: $0.share) },
                expertBars: prefs.experts.map { PreferenceBar(label: Self.label($0.expert), fraction: $0.weight) },
                personalised: prefs.trained,
                message: prefs.trained ? nil : "Tap a few items: recommendations adapt after the next training run."
            )
        } catch FedmrError.NotReady {
            return ForYouState(items: [], modalityBars: [], expertBars: [], personalised: false,
                               message: "Waiting for the first sync with the server.")
        }
    }

    static func label(_ name: String) -> String {
        switch name {
        case "id": return "What you interacted with"
        case "text": return "Descriptions"
        case "image": return "Pictures"
        default: return name.prefix(1).uppercased() + name.dropFirst()
        }
    }
}

struct SampleCatalog {
    let keys: [String]
    private let adjectives = ["Blue", "Quiet", "Golden", "Swift", "Hidden", "Bright", "Wild", "Gentle"]
    private let nouns = ["River", "Garden", "Echo", "Harbor", "Lantern", "Meadow", "Orbit", "Canyon"]

    init(keys: [String]) {
        self.keys = keys
    }

    func title(_ key: String) -> String {
        guard key.hasPrefix("item-"), let n = Int(key.dropFirst(5)) else { return key }
        return "\(adjectives[n % adjectives.count]) \(nouns[(n / adjectives.count) % nouns.count]) #\(n)"
    }
}
