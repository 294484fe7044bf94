//! `GET /v1/model?encoding=f16|int8` (issue 16, item 5): each encoding has
//! its own ETag and 304, decodes to the published model rounded as the
//! encoding rounds it, and a phone that downloads int8 installs, ranks,
//! trains and uploads into a round that closes.

mod common;

use common::*;
use fedmr_core::wire::{ModelEncoding, ModelMessage};
use fedmr_sdk::{Client, ClientConfig, Interaction, InteractionKind, Remote, TrainOptions};
use reqwest::header::{ETAG, IF_NONE_MATCH};

fn get(
    server: &fedmr_server::RunningServer,
    token: &str,
    query: &str,
    tag: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = http()
        .get(format!("{}/v1/model{query}", server.url()))
        .bearer_auth(token);
    if let Some(tag) = tag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    request.send().unwrap()
}

#[test]
fn each_encoding_is_its_own_download_with_its_own_etag() {
    let dir = TempDir::new("compact-etag");
    let server = start(&dir, |_| {});
    let token = issue(&server, "phone-1");
    let global = server.core.snapshot().global.clone();
    let mut tags = Vec::new();
    let mut sizes = Vec::new();
    for encoding in ModelEncoding::ALL {
        let query = format!("?encoding={}", encoding.name());
        let response = get(&server, &token, &query, None);
        assert_eq!(response.status(), 200, "{encoding:?}");
        let tag = response.headers()[ETAG].to_str().unwrap().to_string();
        let bytes = response.bytes().unwrap();
        let (header, model) = ModelMessage::decode(&bytes).unwrap();
        assert_eq!(header.version, 1);
        assert_eq!(model, encoding.round_trip(&global).unwrap(), "{encoding:?}");
        assert_eq!(get(&server, &token, &query, Some(&tag)).status(), 304);
        tags.push(tag);
        sizes.push(bytes.len());
    }
    // No query is f32, the same download as `encoding=f32`.
    let plain = get(&server, &token, "", Some(&tags[0]));
    assert_eq!(plain.status(), 304);
    // A tag of this version in another encoding: the phone has this
    // version (304); a tag of no current download: 200.
    assert_eq!(
        get(&server, &token, "?encoding=int8", Some(&tags[0])).status(),
        304
    );
    assert_eq!(get(&server, &token, "", Some(&tags[4])).status(), 304);
    assert_eq!(
        get(&server, &token, "?encoding=int8", Some("\"00\"")).status(),
        200
    );
    assert_eq!(get(&server, &token, "", Some("\"00\"")).status(), 200);
    assert!(tags[0] != tags[1] && tags[1] != tags[2]);
    // This test model is tiny, so its header weighs: about 0.5 and 0.3.
    assert!(
        sizes[1] * 100 < sizes[0] * 55 && sizes[2] * 3 < sizes[0],
        "{sizes:?}"
    );

    for bad in [
        "?encoding=int3",
        "?encoding=",
        "?format=int8",
        "?encoding=int8&x",
    ] {
        let response = get(&server, &token, bad, None);
        assert_eq!(response.status(), 400, "{bad}");
        assert!(response.text().unwrap().contains("bad_request"), "{bad}");
    }
    assert_eq!(get(&server, "nope", "?encoding=int8", None).status(), 401);
}

#[test]
fn a_phone_on_int8_downloads_ranks_trains_and_its_update_closes_the_round() {
    let dir = TempDir::new("compact-phone");
    let server = start(&dir, |c| c.min_updates = 1);
    let phone = |name: &str, encoding| {
        let client = Client::open(ClientConfig {
            seed: Some(3),
            ..ClientConfig::new(dir.0.join(format!("{name}.sqlite")))
        })
        .unwrap();
        let remote = Remote {
            model_encoding: encoding,
            ..Remote::new(server.url(), issue(&server, name))
        };
        (client, remote)
    };
    let (full, full_remote) = phone("full", ModelEncoding::F32);
    let (small, small_remote) = phone("small", ModelEncoding::Int8);
    // The catalog is the same download for both: compare the model's bytes.
    let catalog_bytes = server.core.snapshot().catalog.bytes.len() as u64;
    let full_model = full.sync(&full_remote).unwrap().bytes_downloaded - catalog_bytes;
    let first = small.sync(&small_remote).unwrap();
    assert!(first.model_updated);
    let small_model = first.bytes_downloaded - catalog_bytes;
    assert!(
        small_model * 3 < full_model,
        "{small_model} of {full_model} bytes"
    );
    assert_eq!(
        small.sync(&small_remote).unwrap().bytes_downloaded,
        0,
        "304 on its own tag"
    );

    let batch: Vec<_> = [2usize, 5, 11, 17]
        .iter()
        .enumerate()
        .map(|(t, &i)| Interaction {
            item_key: fedmr_server::item_key(i),
            kind: InteractionKind::Like,
            timestamp_ms: t as i64,
        })
        .collect();
    small.record_batch(&batch).unwrap();
    assert!(!small.recommend(10, &Default::default()).unwrap().is_empty());
    small.train(&TrainOptions::default()).unwrap();
    let report = small.upload(&small_remote).unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(
        server.core.snapshot().version,
        2,
        "the round closed on the int8 phone's update"
    );
    let next = small.sync(&small_remote).unwrap();
    assert!(next.model_updated && next.bytes_downloaded * 3 < full_model);
    assert_eq!(small.stats().unwrap().model_version, Some(2));
}

/// A phone whose app changes the encoding keeps the version it holds: the
/// server answers 304 to a tag of the current version in any encoding, and
/// the next version comes in the new encoding.
#[test]
fn changing_the_encoding_keeps_the_installed_version_until_the_next() {
    let dir = TempDir::new("compact-switch");
    let server = start(&dir, |c| c.min_updates = 1);
    let client = Client::open(ClientConfig {
        seed: Some(3),
        ..ClientConfig::new(dir.0.join("phone.sqlite"))
    })
    .unwrap();
    let f32_remote = Remote {
        model_encoding: ModelEncoding::F32,
        ..Remote::new(server.url(), issue(&server, "phone"))
    };
    let int8_remote = Remote {
        model_encoding: ModelEncoding::Int8,
        ..f32_remote.clone()
    };
    assert!(client.sync(&f32_remote).unwrap().model_updated);
    let switched = client.sync(&int8_remote).unwrap();
    assert_eq!(
        (switched.model_updated, switched.bytes_downloaded),
        (false, 0)
    );
    // ...and back: the f32 tag is still the one installed.
    assert_eq!(client.sync(&f32_remote).unwrap().bytes_downloaded, 0);

    // Version 2 arrives as int8; switching back to f32 is again a 304.
    let batch: Vec<_> = (0..4)
        .map(|t| Interaction {
            item_key: fedmr_server::item_key(3 * t + 1),
            kind: InteractionKind::Like,
            timestamp_ms: t as i64,
        })
        .collect();
    client.record_batch(&batch).unwrap();
    client.train(&TrainOptions::default()).unwrap();
    assert_eq!(client.upload(&int8_remote).unwrap().delivered, 1);
    let next = client.sync(&int8_remote).unwrap();
    assert!(next.model_updated);
    let f32_size = server.core.snapshot().model.bytes.len() as u64;
    assert!(
        next.bytes_downloaded * 3 < f32_size,
        "{} of {f32_size}",
        next.bytes_downloaded
    );
    assert_eq!(client.sync(&f32_remote).unwrap().bytes_downloaded, 0);
    assert_eq!(client.stats().unwrap().model_version, Some(2));
}
