//! The write path: what runs inside the LMS's transactions. The generated
//! topic triggers (`definer`: `emit_topic` runs a topic's code as its
//! definer), the builders they call (`builder`), the cached test of whether
//! anyone wants a topic (`wanted`), queueing (`enqueue`, `event_id`), and
//! waking the worker at commit (`wake`).

pub mod builder;
pub mod definer;
pub mod enqueue;
pub mod event_id;
pub mod wake;
pub mod wanted;
