//! Imports on this backend, by concept: their rows, their events, the work queue, and the
//! life-cycle changes users ask for. The files depend on each other top-down only
//! (lifecycle → queue → events → rows).

mod events;
mod lifecycle;
mod queue;
mod rows;

pub(crate) use events::*;
pub(crate) use lifecycle::*;
pub(crate) use queue::*;
pub(crate) use rows::*;
