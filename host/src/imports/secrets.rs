//! `runway:workflow/secrets`: fail-closed access to declared secrets.
//!
//! Journaled as "read", never by value: a replay reads the host's value again.

use crate::bindings::secrets::Host;
use crate::bindings::types::Failure;
use crate::journal::Call;
use crate::run::RunState;
use crate::run::fault::RunFault;
use crate::types::EventBody;

impl Host for RunState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Failure>> {
        if !self.run.manifest.secrets.contains(&name) {
            return Err(self.fail(RunFault::SecretUndeclared(name)));
        }
        let Some(value) = self.host.secrets.get(&name) else {
            return Err(self.fail(RunFault::SecretMissing(name)));
        };
        let call = Call::new("runway:workflow/secrets.get", &[name.as_bytes()]);
        let fresh = self.journal_effect(call, &"read")?;
        let mut rec = self.shared.recorder.lock();
        rec.masker.add(&value);
        if fresh {
            rec.system(EventBody::SecretRead { name });
        }
        Ok(Ok(value))
    }
}
