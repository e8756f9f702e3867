//! `runway:workflow/secrets`: fail-closed access to declared secrets.
//!
//! Journaled as "read", never by value: a replay reads the host's value again.

use crate::host::secrets::SecretSource;
use crate::sandbox::bindings::secrets::Host as SecretsImport;
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::{Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::journal::Call;
use crate::sandbox::state::{RunContext, RunState};
use crate::types::EventBody;
use wasmtime::component::HasData;

/// What `secrets` sees of a run.
pub(super) struct SecretsView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    secrets: &'a SecretSource,
}

pub(super) struct Secrets;

impl HasData for Secrets {
    type Data<'a> = SecretsView<'a>;
}

pub(super) fn view(s: &mut RunState) -> SecretsView<'_> {
    SecretsView {
        run: &s.run,
        effects: &s.effects,
        secrets: &s.host.secrets,
    }
}

impl SecretsImport for SecretsView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Failure>> {
        if !self.run.manifest.secrets.contains(&name) {
            return Err(self.effects.fail(RunFault::SecretUndeclared(name)));
        }
        let Some(value) = self.secrets.get(&name) else {
            return Err(self.effects.fail(RunFault::SecretMissing(name)));
        };
        let call = Call::new("runway:workflow/secrets.get", &[name.as_bytes()]);
        self.effects
            .effect::<String, _>(call, OnReplay::GuestEvent { output_bytes: 0 }, || async {
                // A read the guest caused: counted against `max_events`.
                Ok(Performed::quiet("read".to_owned()).event(Recorded::Guest {
                    body: EventBody::SecretRead { name },
                    output_bytes: 0,
                }))
            })
            .await?;
        self.effects.add_secret(&value);
        Ok(Ok(value))
    }
}
