//! The off-site fallback: when the local store has no generation or only corrupt ones, a load
//! takes the newest valid generation of the off-site copy ([`crate::StoreConfig::off_site`]),
//! verified like any other, and writes it back locally.

use crate::backend::{Backend, BackendError};
use crate::envelope::{self, Expect};
use crate::error::{LoadError, SaveError};
use crate::generation::{GenerationInfo, fetch, generation_key};
use crate::load::Loaded;
use crate::persist::Persist;
use crate::report::RestoredFrom;
use crate::retention::Class;
use crate::store::Store;

impl Store {
    /// Loads from the off-site backend and writes the generation back locally: verbatim under
    /// its own key if that key is free, else re-sealed as a new local generation.
    pub(crate) fn restore_from_off_site<T: Persist>(
        &self,
        off_site: &dyn Backend,
        local: LoadError,
    ) -> Result<Loaded<T>, LoadError> {
        tracing::warn!(error = %local, off_site = %off_site.location(), "no valid local generation; trying the off-site copy");
        let mut loaded = match self.load_from::<T>(off_site) {
            Ok(loaded) => loaded,
            // Nothing off-site either: the local answer stands (a fresh start, or all invalid).
            Err(LoadError::NoGeneration { .. }) => return Err(local),
            Err(off) => {
                return Err(LoadError::OffSiteFailed {
                    local: Box::new(local),
                    off_site: Box::new(off),
                });
            }
        };
        let sequence = loaded.report.sequence;
        let written = self.write_back::<T>(off_site, sequence, &loaded.value);
        if let Err(e) = &written {
            tracing::error!(error = %e, "restored off-site generation could not be written back locally");
        }
        if let LoadError::AllInvalid { rejected, .. } = local {
            let mut all = rejected;
            all.append(&mut loaded.report.rejected);
            loaded.report.rejected = all;
        }
        loaded.report.restored_from = Some(RestoredFrom {
            location: off_site.location(),
            local_sequence: written.as_ref().ok().copied(),
            write_back_error: written.err().map(|e| e.to_string()),
        });
        tracing::info!(report = %loaded.report, "restored from the off-site copy");
        Ok(loaded)
    }

    fn write_back<T: Persist>(
        &self,
        off_site: &dyn Backend,
        sequence: u64,
        value: &T,
    ) -> Result<u64, SaveError> {
        let generation = GenerationInfo {
            sequence,
            key: generation_key(T::NAME, sequence),
            size: 0,
        };
        let verbatim = match fetch(off_site, &generation, false) {
            Ok(bytes) => {
                let expect = Expect::generation(T::NAME, sequence);
                (envelope::open(&self.keyring, &bytes, &expect).is_ok()
                    && self.preflight(bytes.len() as u64).is_ok())
                .then_some(bytes)
            }
            Err(_) => None,
        };
        if let Some(bytes) = verbatim {
            match self.backend.put_new(&generation.key, &[&bytes]) {
                Ok(()) => {
                    let book = self.book(T::NAME);
                    let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
                    book.known.insert(sequence, Class::Loadable { base: None });
                    if let Some(next) = book.next_sequence.as_mut() {
                        *next = (*next).max(sequence + 1);
                    }
                    return Ok(sequence);
                }
                Err(BackendError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The key is taken locally (by a corrupt generation): save anew.
        Ok(self.save(value)?.sequence)
    }
}
