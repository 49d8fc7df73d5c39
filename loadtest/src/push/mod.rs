//! The phone's side of the push scenario: simulated apps that enrol with the mobile API and
//! approve held logins over HTTP.
//!
//! * [`http`] is a small HTTP/1.1 client over one keep-alive `TcpStream` (plain HTTP on
//!   loopback: the server's `[mobile_api]` with `allow_plain = true`);
//! * [`app`] signs requests the way the app does (Ed25519 over
//!   `tollgate_engine::push::request_message`) and speaks the API's JSON: enrolment, the
//!   pending challenges, a decision;
//! * [`devices`] keeps the enrolled devices of a run (`devices.json`, mode 0600);
//! * [`setup`] is `push-setup`: delivery, enrolment codes through the `tollgate` command
//!   line, and enrolment over the API;
//! * [`approver`] is the link between the RADIUS workers and the approver threads: the
//!   queue of approvals due, what each user's login in flight showed, the count of logins
//!   held at once, and what the approvers counted.
//!
//! Nothing here panics on what the server sends: every answer is checked and an unexpected
//! one is counted (or, in `push-setup`, reported as an error).

pub mod app;
pub mod approver;
pub mod devices;
pub mod http;
pub mod setup;
