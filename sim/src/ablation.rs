//! The ablation study as configuration: the full MFFM against each single
//! expert, each input dropped, and the plain ID backbone, all with the same
//! backbone and step sizes, in the paper's form or the residual one.

use fedmr_core::model::{Expert, FusionMode};

/// One row of the ablation table.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub name: String,
    pub fusion: FusionMode,
    /// Content modalities kept (empty: all the dataset has).
    pub modalities: Vec<String>,
}

/// The variants for a dataset with these modalities, full model first,
/// each in the form of `base` (the paper's MFFM or a residual form with its
/// step and ID dropout). The residual form always has the ID row, so it has
/// no "no id" variant.
pub fn variants(modalities: &[String], base: &FusionMode) -> Vec<Variant> {
    let residual = match base {
        FusionMode::Residual { .. } => Some(base.clone()),
        _ => None,
    };
    let variant = |name: String, experts: Vec<Expert>, use_id: bool, keep: Vec<String>| Variant {
        name,
        fusion: match &residual {
            Some(FusionMode::Residual {
                evidence,
                fusion_lr,
                id_dropout,
                ..
            }) => FusionMode::Residual {
                experts,
                evidence: *evidence,
                fusion_lr: *fusion_lr,
                id_dropout: *id_dropout,
            },
            _ => FusionMode::Mffm { experts, use_id },
        },
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
    if residual.is_none() {
        out.push(variant("no id".into(), Expert::ALL.to_vec(), false, vec![]));
    }
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
        let names: Vec<String> = variants(&["text".into(), "image".into()], &FusionMode::full())
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
        let v = variants(&["text".into(), "image".into()], &FusionMode::full());
        assert_eq!(v[5].modalities, vec!["image".to_string()]);
        assert_eq!(
            v[4].fusion,
            FusionMode::Mffm {
                experts: Expert::ALL.to_vec(),
                use_id: false
            }
        );
        assert_eq!(variants(&["text".into()], &FusionMode::full()).len(), 6);
    }

    #[test]
    fn the_residual_form_keeps_its_step_and_dropout_in_every_variant() {
        let base = FusionMode::Residual {
            experts: Expert::ALL.to_vec(),
            evidence: false,
            fusion_lr: Some(0.1),
            id_dropout: 0.2,
        };
        let v = variants(&["text".into(), "image".into()], &base);
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mffm (all)",
                "sum only",
                "mlp only",
                "gate only",
                "no text",
                "no image",
                "id only"
            ]
        );
        assert_eq!(v[0].fusion, base);
        assert_eq!(
            v[2].fusion,
            FusionMode::Residual {
                experts: vec![Expert::Mlp],
                evidence: false,
                fusion_lr: Some(0.1),
                id_dropout: 0.2,
            }
        );
        assert_eq!(v[6].fusion, FusionMode::IdOnly);
    }
}
