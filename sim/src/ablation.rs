//! The ablation study as configuration: the full MFFM against each single
//! expert, each input dropped, and the plain ID backbone, all with the same
//! backbone and step sizes.

use fedmr_core::model::{Expert, FusionMode};

/// One row of the ablation table.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub name: String,
    pub fusion: FusionMode,
    /// Content modalities kept (empty: all the dataset has).
    pub modalities: Vec<String>,
}

/// The variants for a dataset with these modalities, full model first.
pub fn variants(modalities: &[String]) -> Vec<Variant> {
    let variant = |name: String, experts: Vec<Expert>, use_id: bool, keep: Vec<String>| Variant {
        name,
        fusion: FusionMode::Mffm { experts, use_id },
        modalities: keep,
    };
    let mut out = vec![variant(
        "mffm (all)".into(),
        Expert::ALL.to_vec(),
        true,
        vec![],
    )];
    for e in Expert::ALL {
        let name = format!("{e:?} only").to_lowercase();
        out.push(variant(name, vec![e], true, vec![]));
    }
    out.push(variant("no id".into(), Expert::ALL.to_vec(), false, vec![]));
    // Dropping a modality leaves the others; with one modality there is
    // nothing left to fuse with the ID but the ID itself (the last row).
    if modalities.len() > 1 {
        for dropped in modalities {
            let kept = modalities
                .iter()
                .filter(|m| *m != dropped)
                .cloned()
                .collect();
            out.push(variant(
                format!("no {dropped}"),
                Expert::ALL.to_vec(),
                true,
                kept,
            ));
        }
    }
    out.push(Variant {
        name: "id only".into(),
        fusion: FusionMode::IdOnly,
        modalities: vec![],
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expert_and_input_is_dropped_once() {
        let names: Vec<String> = variants(&["text".into(), "image".into()])
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(
            names,
            [
                "mffm (all)",
                "sum only",
                "mlp only",
                "gate only",
                "no id",
                "no text",
                "no image",
                "id only"
            ]
        );
        let v = variants(&["text".into(), "image".into()]);
        assert_eq!(v[5].modalities, vec!["image".to_string()]);
        assert_eq!(
            v[4].fusion,
            FusionMode::Mffm {
                experts: Expert::ALL.to_vec(),
                use_id: false
            }
        );
        assert_eq!(variants(&["text".into()]).len(), 6);
    }
}
