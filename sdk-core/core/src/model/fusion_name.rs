//! `FusionMode` by name, as the simulator's and the server's command lines
//! spell it: `id`, `mffm` (the paper's form), `residual` / `evidence` (with
//! `@<fusion lr>[/<ID dropout>]`), or one expert: `sum`, `mlp`, `gate`.

use super::{Expert, FusionMode};

impl FusionMode {
    /// Parses a fusion name; `no_id` drops the ID input (not with the
    /// residual forms, which add to the ID row). `residual@0.01/0.5`: the
    /// residual form whose MFFM parameters step at 0.01 on the clients,
    /// with each item's ID row hidden in half of the training epochs.
    pub fn parse(name: &str, no_id: bool) -> Result<FusionMode, String> {
        let (form, fusion_lr, id_dropout) = match name.split_once('@') {
            Some((form @ ("residual" | "evidence"), rest)) => {
                let (lr, dropout) = rest.split_once('/').unwrap_or((rest, "0"));
                let lr = lr
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or(format!("bad fusion learning rate in '{name}'"))?;
                let dropout = dropout
                    .parse::<f32>()
                    .ok()
                    .filter(|v| (0.0..1.0).contains(v))
                    .ok_or(format!("bad ID dropout in '{name}' (expected [0, 1))"))?;
                (form, Some(lr), dropout)
            }
            _ => (name, None, 0.0),
        };
        let experts = match form {
            "id" => return Ok(FusionMode::IdOnly),
            "residual" | "evidence" if no_id => {
                return Err("dropping the ID input does not apply to the residual form \
                            (it adds to the ID row)"
                    .into());
            }
            "residual" | "evidence" => {
                return Ok(FusionMode::Residual {
                    experts: Expert::ALL.to_vec(),
                    evidence: form == "evidence",
                    fusion_lr,
                    id_dropout,
                });
            }
            "mffm" => Expert::ALL.to_vec(),
            "sum" => vec![Expert::Sum],
            "mlp" => vec![Expert::Mlp],
            "gate" => vec![Expert::Gate],
            other => {
                return Err(format!(
                    "unknown fusion '{other}' (expected id, mffm, residual, evidence, sum, mlp or gate)"
                ));
            }
        };
        Ok(FusionMode::Mffm {
            experts,
            use_id: !no_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_their_forms() {
        assert_eq!(FusionMode::parse("id", false), Ok(FusionMode::IdOnly));
        assert_eq!(FusionMode::parse("mffm", false), Ok(FusionMode::full()));
        assert_eq!(
            FusionMode::parse("sum", true),
            Ok(FusionMode::Mffm {
                experts: vec![Expert::Sum],
                use_id: false
            })
        );
        assert_eq!(
            FusionMode::parse("residual@0.003", false),
            Ok(FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: false,
                fusion_lr: Some(0.003),
                id_dropout: 0.0,
            })
        );
        assert_eq!(
            FusionMode::parse("evidence@0.1/0.2", false),
            Ok(FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: true,
                fusion_lr: Some(0.1),
                id_dropout: 0.2,
            })
        );
        assert_eq!(
            FusionMode::parse("residual", false),
            Ok(FusionMode::Residual {
                experts: Expert::ALL.to_vec(),
                evidence: false,
                fusion_lr: None,
                id_dropout: 0.0,
            })
        );
    }

    #[test]
    fn bad_names_say_why() {
        for (name, why) in [
            ("residual@0", "learning rate"),
            ("residual@nan", "learning rate"),
            ("residual@0.1/1", "dropout"),
            ("residual@0.1/-0.1", "dropout"),
            ("mfm", "unknown fusion"),
        ] {
            let err = FusionMode::parse(name, false).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
        assert!(FusionMode::parse("residual", true).is_err());
    }
}
