//! Configuration parameters (GUCs). All are documented in the README with
//! their defaults. The worker re-reads them on SIGHUP.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;
use std::time::Duration;

/// Range of webhook.request_timeout in milliseconds (timeout_ms has the same).
const REQUEST_TIMEOUT_MIN_MS: i32 = 100;
const REQUEST_TIMEOUT_MAX_MS: i32 = 300_000;
/// Most bytes of a response body webhook.response_excerpt_bytes may keep.
const RESPONSE_EXCERPT_MAX: i32 = 1_048_576;

pub static DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MAX_CONCURRENCY: GucSetting<i32> = GucSetting::<i32>::new(64);
pub static HTTP_NICE: GucSetting<i32> = GucSetting::<i32>::new(19);
pub static MAX_PER_ENDPOINT: GucSetting<i32> = GucSetting::<i32>::new(16);
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static BATCH_WAIT_MS: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static REQUEST_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static RETRY_SCHEDULE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"0s,5s,5min,30min,2h,5h,10h,14h,20h,24h"));
pub static MAX_RETRY_AFTER_S: GucSetting<i32> = GucSetting::<i32>::new(86_400);
pub static DISABLE_AFTER_S: GucSetting<i32> = GucSetting::<i32>::new(5 * 86_400);
pub static RETENTION_S: GucSetting<i32> = GucSetting::<i32>::new(7 * 86_400);
pub static ALLOWED_HOSTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static RESPONSE_EXCERPT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(2048);
pub static CALLBACK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(2000);
/// The largest event body the worker loads and sends; a larger one fails
/// its own delivery. Writers control body sizes: this bounds the worker.
pub static MAX_BODY_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16 * 1024 * 1024);

/// Register every GUC; called from `_PG_init`. Postmaster-level GUCs can
/// only be defined while preloading (they size the worker), so a backend
/// that loads the library on demand skips them.
pub fn init() {
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        init_postmaster_gucs();
    }
    init_reloadable_gucs();
}

fn init_postmaster_gucs() {
    GucRegistry::define_string_guc(
        c"webhook.database",
        c"Only this database gets a delivery worker (empty: every database where the extension exists).",
        c"By default the launcher starts a worker in every database with the extension; naming one restricts delivery to it, as in 0.1.0.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.max_concurrency",
        c"Most HTTP requests in flight at once in the cluster, split among the databases with requests out; also each worker's HTTP threads.",
        c"",
        &MAX_CONCURRENCY,
        1,
        1024,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.http_nice",
        c"Niceness of each worker's HTTP threads (0: that of the server's processes; 19: yield the most).",
        c"The worker's main thread, which records outcomes and claims deliveries in the database, keeps the server's priority; its HTTP threads yield the CPU to it and to the server's other processes. Raising it cannot be undone without a restart (an unprivileged process cannot lower its niceness), hence set at server start.",
        &HTTP_NICE,
        0,
        19,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

fn init_reloadable_gucs() {
    GucRegistry::define_int_guc(
        c"webhook.max_per_endpoint",
        c"Most HTTP requests in flight to one webhook, so a slow endpoint cannot take every thread.",
        c"",
        &MAX_PER_ENDPOINT,
        1,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.batch_size",
        c"Most deliveries the worker claims per transaction.",
        c"",
        &BATCH_SIZE,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.poll_interval",
        c"Fallback poll interval when no commit wakes the worker.",
        c"",
        &POLL_INTERVAL_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"webhook.batch_wait",
        c"How long the worker gathers the commits that woke it into one fan-out and claim: longer costs writers less and delays delivery as much.",
        c"",
        &BATCH_WAIT_MS,
        1,
        1000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"webhook.request_timeout",
        c"Default HTTP request timeout; a webhook's timeout_ms overrides it.",
        c"",
        &REQUEST_TIMEOUT_MS,
        REQUEST_TIMEOUT_MIN_MS,
        REQUEST_TIMEOUT_MAX_MS,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"webhook.retry_schedule",
        c"Delays before each attempt, comma-separated (s, min, h); its length is the number of attempts.",
        c"",
        &RETRY_SCHEDULE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.max_retry_after",
        c"Longest Retry-After (on 429/503) that is honoured.",
        c"",
        &MAX_RETRY_AFTER_S,
        0,
        604_800,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"webhook.disable_after",
        c"A webhook failing without any success for this long is disabled automatically (0 = never).",
        c"",
        &DISABLE_AFTER_S,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"webhook.retention",
        c"How long the delivery log is kept: its oldest slot is emptied whole once all of it is older than this (unfinished deliveries are kept).",
        c"",
        &RETENTION_S,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"webhook.allowed_hosts",
        c"Comma-separated CIDRs or host names the worker may reach although they are not public.",
        c"",
        &ALLOWED_HOSTS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"webhook.ca_file",
        c"PEM file of extra CA certificates trusted for HTTPS, besides the system roots.",
        c"",
        &CA_FILE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"webhook.response_excerpt_bytes",
        c"How much of each response body is kept in the attempt log.",
        c"",
        &RESPONSE_EXCERPT_BYTES,
        0,
        RESPONSE_EXCERPT_MAX,
        GucContext::Sighup,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_int_guc(
        c"webhook.callback_timeout",
        c"Longest an outcome callback may run before it is cancelled (and retried).",
        c"Callbacks run one at a time on the delivery worker's main thread.",
        &CALLBACK_TIMEOUT_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"webhook.max_body_bytes",
        c"The largest event body that is delivered; a larger one fails its delivery.",
        c"The worker holds at most four times this much of bodies in flight.",
        &MAX_BODY_BYTES,
        1024,
        crate::render::MAX_INPUT_BYTES as i32,
        GucContext::Sighup,
        GucFlags::UNIT_BYTE,
    );
}

/// A string GUC as an owned `String` ("" when unset).
pub fn string(setting: &GucSetting<Option<CString>>) -> String {
    setting
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// webhook.request_timeout, clamped to its range (never trusting the raw
/// integer in a conversion).
pub fn request_timeout() -> Duration {
    let ms = REQUEST_TIMEOUT_MS
        .get()
        .clamp(REQUEST_TIMEOUT_MIN_MS, REQUEST_TIMEOUT_MAX_MS);
    Duration::from_millis(u64::try_from(ms).unwrap_or(10_000))
}

/// webhook.response_excerpt_bytes, clamped to its range.
pub fn response_excerpt_bytes() -> usize {
    usize::try_from(RESPONSE_EXCERPT_BYTES.get().clamp(0, RESPONSE_EXCERPT_MAX)).unwrap_or(0)
}
