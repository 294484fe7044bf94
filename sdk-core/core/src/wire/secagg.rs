//! Secure aggregation's messages on the wire: each in the common envelope
//! under its own kind (`crate::secagg` defines them and the protocol).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::envelope::{self, MessageKind};
use crate::codec;
use crate::secagg::{KeyAdvert, MaskedInput, Roster, ShareBatch, UnmaskRequest, UnmaskResponse};
use crate::{Error, Result};

/// A secure-aggregation message: its kind and its own checks.
pub trait SecAggMessage: Serialize + DeserializeOwned {
    const KIND: MessageKind;
    const NAME: &'static str;

    /// Checks the message can make on its own.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        envelope::seal(Self::KIND, &codec::encode(self)).0
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (body, _) = envelope::open(bytes, Self::KIND)?;
        let message: Self = codec::decode(body, Self::NAME)?;
        message
            .check()
            .map_err(|m| Error::InvalidMessage(format!("{}: {m}", Self::NAME)))?;
        Ok(message)
    }
}

impl SecAggMessage for KeyAdvert {
    const KIND: MessageKind = MessageKind::SecAggKeys;
    const NAME: &'static str = "secure aggregation keys";
}

impl SecAggMessage for Roster {
    const KIND: MessageKind = MessageKind::SecAggRoster;
    const NAME: &'static str = "secure aggregation roster";

    fn check(&self) -> std::result::Result<(), String> {
        if self.degree >= self.cohort || self.threshold == 0 || self.threshold > self.degree {
            return Err(format!(
                "degree {} and threshold {} for a cohort of {}",
                self.degree, self.threshold, self.cohort
            ));
        }
        let ascending = self.members.windows(2).all(|w| w[0].0 < w[1].0);
        if !ascending || self.members.iter().any(|(i, _)| *i >= self.cohort) {
            return Err("members must be ascending indices of the cohort".into());
        }
        Ok(())
    }
}

impl SecAggMessage for ShareBatch {
    const KIND: MessageKind = MessageKind::SecAggShares;
    const NAME: &'static str = "secure aggregation shares";
}

impl SecAggMessage for MaskedInput {
    const KIND: MessageKind = MessageKind::SecAggMasked;
    const NAME: &'static str = "masked input";

    fn check(&self) -> std::result::Result<(), String> {
        if !self.values.len().is_multiple_of(4) {
            return Err(format!("{} bytes of u32 values", self.values.len()));
        }
        Ok(())
    }
}

impl SecAggMessage for UnmaskRequest {
    const KIND: MessageKind = MessageKind::SecAggUnmaskRequest;
    const NAME: &'static str = "unmask request";
}

impl SecAggMessage for UnmaskResponse {
    const KIND: MessageKind = MessageKind::SecAggUnmaskResponse;
    const NAME: &'static str = "unmask response";
}
