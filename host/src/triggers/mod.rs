//! What starts or wakes runs besides a direct call: cron schedules and
//! signed webhooks. Each trigger decides what to do; the host does it.

pub mod cron;
pub mod webhook;
