//! The delivery worker: the launcher that starts one per database, its
//! loop (`delivery_loop`), the fan-out of new events (`fanout`) and what it
//! claims before writing it (`in_flight`), claiming
//! (`claim`), sending on a pool of threads
//! (`pool`, `admission`), recording outcomes (`record`, `verdict`),
//! retries (`retry`), upkeep (`maintenance`), and the cache of endpoints.

pub mod admission;
pub mod callbacks;
pub mod claim;
pub mod delivery_loop;
pub mod endpoints;
pub mod fanout;
pub mod in_flight;
pub mod latch;
pub mod launcher;
pub mod maintenance;
pub mod node_state;
mod plans;
pub mod pool;
pub mod presence;
pub mod profile;
pub mod record;
pub mod retry;
pub mod settings;
pub mod txn;
pub mod verdict;
