//! Captured stdout/stderr: every write becomes `program_output` events,
//! masked and counted against the run's budgets. A write past a budget traps
//! the guest there and then.

use super::effect::Effects;
use crate::types::OutputStream as Which;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Largest single write the guest is offered; it splits bigger ones.
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct CapturedOutput {
    shared: Arc<Effects>,
    which: Which,
}

impl CapturedOutput {
    pub(crate) fn new(shared: Arc<Effects>, which: Which) -> Self {
        CapturedOutput { shared, which }
    }

    fn write_bytes(&self, bytes: &[u8]) -> Result<(), StreamError> {
        {
            let mut rec = self.shared.recorder.lock();
            rec.output(self.which, bytes)
                .map_err(|fault| StreamError::Trap(rec.fail(fault)))?;
        }
        self.shared.maybe_flush();
        Ok(())
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes)
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.write_bytes(buf)
                .map(|()| buf.len())
                .map_err(|_| std::io::Error::other("run output budget exceeded")),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
