//! Every metric this crate records, by name. Labels are bounded: an endpoint name, an HTTP
//! status code or a reason from a fixed list, never a device id or a user.

/// Counter of push API requests answered, labelled `endpoint` (`enrol`, `challenges`,
/// `decide`, `health`, `other`) and `status` (the HTTP status code).
pub const PUSH_API_REQUESTS_TOTAL: &str = "tollgate_push_api_requests_total";

/// Counter of signed requests refused before they reached the backend, labelled `reason`:
/// `header` (missing or malformed authentication header), `stale` (timestamp out of the
/// window), `unknown_device`, `signature`, `replay`, `device_nonces_full` (one device made
/// too many requests within the window), `nonces_full` (the global nonce cache is full).
pub const PUSH_API_REFUSED_TOTAL: &str = "tollgate_push_api_refused_total";

/// Gauge of nonces the push API remembers to refuse replays.
pub const PUSH_API_NONCES: &str = "tollgate_push_api_nonces";

/// Counter of connections turned away or closed by the server loop, labelled `reason`:
/// `tls_handshake` (failed or timed out) and `drain_deadline` (still open when the drain's
/// grace period ended).
pub const PORTAL_CONNECTIONS_DROPPED_TOTAL: &str = "tollgate_portal_connections_dropped_total";
