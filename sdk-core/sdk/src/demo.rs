//! Sample server data for examples, demo apps and binding tests: the core
//! makes it; the SDK passes it on so that apps need only this crate.

pub use fedmr_core::demo::SampleServerData;

/// A catalog of `n_items` items (`item-0`, `item-1`, ...) and its version-1
/// model, as the bytes a server would publish; the same seed gives the same bytes.
pub fn sample_server_data(n_items: usize, seed: u64) -> crate::Result<SampleServerData> {
    Ok(fedmr_core::demo::sample_server_data(n_items, seed)?)
}
