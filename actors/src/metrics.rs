//! Names of every metric the server exports, in one place.
//!
//! Names follow `tollgate_<noun>_<unit>[_total]`. Labels are bounded: a client name (from
//! configuration), a result, a reason or an actor kind — never a user name or an address.

/// Requests received, by `client` and `code` (access_request, status_server, other).
pub const REQUESTS_TOTAL: &str = "tollgate_radius_requests_total";
/// Replies sent, by `client`, `mode` and `result` (accept, reject, challenge, alive).
pub const REPLIES_TOTAL: &str = "tollgate_radius_replies_total";
/// Refused logins, by `client` and `reason`.
pub const REJECTS_TOTAL: &str = "tollgate_radius_rejects_total";
/// Packets dropped without a reply, by `client` (or `unknown`) and `reason`.
pub const DROPPED_TOTAL: &str = "tollgate_radius_dropped_total";
/// Work shed because an admission gate was full, by `gate`.
pub const SHED_TOTAL: &str = "tollgate_shed_total";
/// Retransmits answered from the duplicate cache, by `client`.
pub const DUPLICATES_TOTAL: &str = "tollgate_radius_duplicates_total";
/// Time from receipt to reply, by `client` and `result`.
pub const LATENCY_SECONDS: &str = "tollgate_radius_request_duration_seconds";
/// Users locked by the lockout rule.
pub const LOCKOUTS_TOTAL: &str = "tollgate_lockouts_total";
/// Challenge sessions open now.
pub const SESSIONS_ACTIVE: &str = "tollgate_sessions_active";
/// Slow password checks by `path` (`argon2`, or `cache_after_wait`: verified meanwhile by
/// another login of the same user) and `result`; the cache's own hits are not counted.
pub const PASSWORD_CHECKS_TOTAL: &str = "tollgate_password_checks_total";
/// Actors restarted by their supervisor after a failure, by `kind`.
pub const ACTOR_RESTARTS_TOTAL: &str = "tollgate_actor_restarts_total";
/// Requests admitted and not yet answered, by `client`.
pub const IN_FLIGHT: &str = "tollgate_radius_in_flight";
/// Users loaded in the embedded directory.
pub const USERS_LOADED: &str = "tollgate_directory_users";
/// Store flushes that failed (runtime state kept and retried).
pub const STORE_ERRORS_TOTAL: &str = "tollgate_store_errors_total";
/// Writes of the used-code journal that failed (the logins that needed them were refused).
pub const JOURNAL_ERRORS_TOTAL: &str = "tollgate_journal_errors_total";

/// Directory operations (search, bind, modify) by `domain` and `role` (search, bind), in
/// seconds, failover included.
pub const LDAP_OPERATION_SECONDS: &str = "tollgate_ldap_operation_duration_seconds";
/// Directory operations that failed (no server answered, protocol error), by `domain` and
/// `role`.
pub const LDAP_ERRORS_TOTAL: &str = "tollgate_ldap_errors_total";
/// Directory servers marked dead, by `domain`.
pub const LDAP_FAILOVERS_TOTAL: &str = "tollgate_ldap_failovers_total";

/// Messages in the outbox waiting to be sent (dead letters excluded).
pub const DELIVERY_QUEUED: &str = "tollgate_delivery_queued";
/// Dead letters in the outbox, waiting for an admin.
pub const DELIVERY_DEAD_LETTERS: &str = "tollgate_delivery_dead_letters";
/// Messages delivered, by `channel` and `gateway`.
pub const DELIVERY_SENT_TOTAL: &str = "tollgate_delivery_sent_total";
/// Attempts that failed on every gateway and were scheduled again, by `channel`.
pub const DELIVERY_RETRIED_TOTAL: &str = "tollgate_delivery_retried_total";
/// Messages that became dead letters, by `channel`.
pub const DELIVERY_FAILED_TOTAL: &str = "tollgate_delivery_failed_total";
/// Push tokens forgotten because the push service said they are unregistered.
pub const PUSH_TOKENS_FORGOTTEN_TOTAL: &str = "tollgate_push_tokens_forgotten_total";
/// Time one gateway took to take or refuse a message, by `channel`.
pub const DELIVERY_DURATION_SECONDS: &str = "tollgate_delivery_duration_seconds";
/// Codes not sent because their destination asked for too many, by `channel`.
pub const DELIVERY_THROTTLED_TOTAL: &str = "tollgate_delivery_throttled_total";
/// Day codes issued, by `reason` (batch, replace).
pub const DAYCODES_ISSUED_TOTAL: &str = "tollgate_daycodes_issued_total";

/// Histogram buckets for request latency, in seconds: fine below a millisecond, where
/// inline logins land, and coarse up to the Argon2 and challenge paths.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// Audit records lost by a sink, by `sink` (file, syslog) and `reason` (queue_full: the
/// sink fell behind; send_failed: the receiver could not be reached or the send failed).
pub const AUDIT_DROPPED_TOTAL: &str = "tollgate_audit_dropped_total";

/// CPU time of the process, user and system (the usual Prometheus process metric).
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// Resident memory of the process.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// Open file descriptors of the process.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
/// Threads of the process.
pub const PROCESS_THREADS: &str = "process_threads";
/// Start time of the process, in seconds since the Unix epoch.
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
