//! `Client::export`: everything the SDK stores about the user, as JSON
//! (data portability). The server's catalog and model are not the user's
//! data and are referred to by version only.

use serde_json::{Value, json};

use super::Client;
use crate::Result;

/// Bumped when the export's layout changes.
const EXPORT_FORMAT: u32 = 1;

impl Client {
    pub fn export(&self) -> Result<String> {
        let interactions: Vec<Value> = self
            .store
            .interactions(usize::MAX)?
            .into_iter()
            .map(|i| {
                json!({
                    "item_key": i.item_key,
                    "kind": i.kind.as_str(),
                    "weight": i.weight,
                    "timestamp_ms": i.timestamp_ms,
                })
            })
            .collect();
        let private_model = self.private_record()?.map(|r| {
            json!({
                "rounds_trained": r.rounds_trained,
                "trained_on_model_version": r.model_version,
                "parameters": r.user_params,
                "personal_item_rows": r.personal_ids.len(),
            })
        });
        let preferences = self.preferences().ok();
        let uploads: Vec<Value> = self
            .pending_uploads()?
            .into_iter()
            .map(|u| {
                json!({
                    "idempotency_key": u.idempotency_key,
                    "round": u.round,
                    "base_version": u.base_version,
                    "bytes": u.bytes.len(),
                    "created_ms": u.created_ms,
                })
            })
            .collect();
        let installed = self.installed();
        let document = json!({
            "format": "fedmr-export",
            "format_version": EXPORT_FORMAT,
            "catalog_version": installed.catalog.as_ref().map(|c| c.meta.version),
            "model_version": installed.model.as_ref().map(|m| m.version),
            "interactions": interactions,
            "private_model": private_model,
            "preferences": preferences,
            "pending_uploads": uploads,
        });
        Ok(serde_json::to_string_pretty(&document).expect("a JSON value always serializes"))
    }
}
